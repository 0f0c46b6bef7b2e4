// Package keys owns the key material that authenticates a0cli to a0agent and
// a0agent to a0cli.
//
// CLI side: the key pair in the CLI home ($A0CLI_HOME, default ~/.a0cli):
// id_a0 (OpenSSH private key, 0600) and id_a0.pub (authorized_keys line);
// the short-lived self-signed client certificate made from it for every
// connection (ClientCertificate); and known_nodes, which pins each node's
// TLS certificate on first contact like ssh's known_hosts with accept-new
// (KnownNodes).
//
// Node side: the authorized keys file (Authorized), reloaded whenever another
// process changes it, and the node's own long-lived self-signed TLS
// certificate (LoadOrCreateNodeCert).
//
// Why TLS does not do the authorization itself: the node accepts any client
// certificate at the TLS layer (tls.RequireAnyClientCert), so the TLS
// handshake still proves the client holds the private key of the leaf
// certificate (CertificateVerify), and the HTTP layer then looks that public
// key up with Authorized.Lookup. An unknown key thus gets a clear HTTP 401
// instead of an opaque TLS alert. The client certificate's validity period is
// not what protects the node; possession of the key, proved per handshake, is.
//
// See Example_wiring for the tls.Config on both sides.
package keys
