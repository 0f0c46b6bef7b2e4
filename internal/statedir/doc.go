// Package statedir owns the layout of an agent's state directory: the node's
// role and backup device, its sensitive configuration (data encryption key,
// token signing key, TLS key and certificate, authorized CLI keys), the
// embedded database files and the job records.
//
// The sensitive files are created on first start with mode 0600 and are the
// only inputs of a sensitive backup; the ordinary backup never reads them.
package statedir
