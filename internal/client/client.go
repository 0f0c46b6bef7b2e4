package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/keys"
)

// Client talks to one node.
type Client struct {
	base string
	node string
	http *http.Client
	// Fingerprint is the node certificate's, once connected.
	Fingerprint string
	pinMu       sync.Mutex // first contact: one question, one pin
}

// PinRefusedError: on first contact the operator did not accept the
// node's certificate. Nothing was pinned and no request was sent.
type PinRefusedError struct{ Node, Fingerprint string }

func (e *PinRefusedError) Error() string {
	return fmt.Sprintf("the certificate of %s (%s) was not accepted: nothing was pinned and nothing was sent to the node", e.Node, e.Fingerprint)
}

// ConnError means the node could not be reached at all.
type ConnError struct {
	Node string
	Err  error
}

func (e *ConnError) Error() string {
	return fmt.Sprintf("cannot reach node %s: %v (is a0agent running there, and is the port right?)", e.Node, e.Err)
}

func (e *ConnError) Unwrap() error { return e.Err }

// New prepares a client for node (host:port) with the CLI key of home.
// onPin, when not nil, is called on first contact with the node's
// fingerprint, after the handshake and before the pin is written or
// anything is said to the node: an error from it (the operator did not
// accept the certificate) closes the connection, pins nothing, and is the
// request's error.
func New(home, node string, onPin func(node, fingerprint string) error) (*Client, error) {
	signer, err := keys.Load(home)
	if err != nil {
		return nil, err
	}
	cert, err := keys.ClientCertificate(signer)
	if err != nil {
		return nil, err
	}
	c := &Client{base: "https://" + node, node: node}
	known := keys.KnownNodes{Path: home + "/known_nodes"}
	tlsConf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		// The node's certificate is self-signed: trust comes from pinning
		// (VerifyPeerCertificate), as ssh's known_hosts does, not from a CA.
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS12,
		// Refuses a changed certificate during the handshake; a new one
		// is pinned only once the handshake completed (dialTLS).
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("node presented no certificate")
			}
			_, err := known.Verify(node, raw[0])
			return err
		},
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	// dialTLS pins the node's certificate after the handshake: in TLS the
	// peer's certificate is checked before its signature over the
	// handshake, and a pin written then would record a certificate whose
	// key the peer never proved it holds.
	dialTLS := func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(raw, tlsConf)
		hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			raw.Close()
			return nil, err
		}
		leaf := tc.ConnectionState().PeerCertificates[0].Raw
		fp := keys.Fingerprint(leaf)
		// One first contact per client, even when connections are dialled
		// side by side: the operator is asked once.
		c.pinMu.Lock()
		defer c.pinMu.Unlock()
		unknown, err := known.Verify(node, leaf)
		if err == nil && unknown && onPin != nil {
			err = onPin(node, fp)
		}
		if err == nil {
			_, err = known.Check(node, leaf)
		}
		if err != nil {
			tc.Close()
			return nil, err
		}
		c.Fingerprint = fp
		return tc, nil
	}
	c.http = &http.Client{Transport: &http.Transport{
		DialTLSContext:      dialTLS,
		MaxIdleConnsPerHost: 4,
	}}
	return c, nil
}

// Node is host:port.
func (c *Client) Node() string { return c.node }

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var changed *keys.ChangedCertError
		if errors.As(err, &changed) {
			return nil, changed
		}
		var refused *PinRefusedError
		if errors.As(err, &refused) {
			return nil, refused
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ConnError{Node: c.node, Err: err}
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusPartialContent {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// decodeError turns an error response into *api.Error.
func decodeError(resp *http.Response) error {
	var body api.ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := json.Unmarshal(b, &body); err != nil || body.Error == nil {
		return &api.Error{Code: api.CodeInternal, Message: fmt.Sprintf("node answered %s", resp.Status)}
	}
	return body.Error
}

// JSON sends in (if not nil) as JSON and decodes the answer into out.
func (c *Client) JSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	hdr := http.Header{}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
		hdr.Set("Content-Type", "application/json")
	}
	resp, err := c.do(ctx, method, path, body, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if raw, ok := out.(*json.RawMessage); ok {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		*raw = bytes.TrimSpace(b)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s: %w", path, err)
	}
	return nil
}

// Download is an open download of a backup file.
type Download struct {
	Body   io.ReadCloser
	Name   string
	MD5    string
	SHA256 string
	// Offset is where Body starts; Total the full size.
	Offset, Total int64
}

// Get downloads a slot's file starting at offset, resuming only if the file
// on the node is still the one with etag (its sha256); otherwise it starts
// over at 0.
func (c *Client) Get(ctx context.Context, slot string, offset int64, sha string) (*Download, error) {
	return c.GetFile(ctx, api.PathSlot+slot+"/file", offset, sha)
}

// GetFile is Get of any file path of the API (a slot's, a remote copy's).
func (c *Client) GetFile(ctx context.Context, path string, offset int64, sha string) (*Download, error) {
	hdr := http.Header{}
	if offset > 0 && sha != "" {
		hdr.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
		hdr.Set("If-Range", `"`+sha+`"`)
	}
	resp, err := c.do(ctx, http.MethodGet, path, nil, hdr)
	if err != nil {
		return nil, err
	}
	d := &Download{Body: resp.Body, Name: resp.Header.Get(api.HeaderName), MD5: resp.Header.Get(api.HeaderMD5),
		SHA256: resp.Header.Get(api.HeaderSHA256)}
	if resp.StatusCode == http.StatusPartialContent {
		var start, end, total int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &total); err != nil || start != offset {
			resp.Body.Close()
			return nil, fmt.Errorf("node answered a bad Content-Range %q", resp.Header.Get("Content-Range"))
		}
		d.Offset, d.Total = start, total
	} else {
		d.Total = resp.ContentLength
	}
	return d, nil
}

// UploadState returns how many bytes of an upload the node holds.
func (c *Client) UploadState(ctx context.Context, id string) (int64, error) {
	u, err := c.UploadInfo(ctx, id)
	return u.Size, err
}

// UploadInfo returns the size and the sha256 of the bytes of an upload the
// node holds.
func (c *Client) UploadInfo(ctx context.Context, id string) (api.Upload, error) {
	var u api.Upload
	err := c.JSON(ctx, http.MethodGet, api.PathUploads+id, nil, &u)
	return u, err
}

// UploadChunk appends body at offset and returns the new size.
func (c *Client) UploadChunk(ctx context.Context, id string, offset int64, body io.Reader, n int64) (int64, error) {
	hdr := http.Header{}
	hdr.Set(api.HeaderOffset, strconv.FormatInt(offset, 10))
	hdr.Set("Content-Type", "application/octet-stream")
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+api.PathUploads+id, body)
	if err != nil {
		return 0, err
	}
	req.Header = hdr
	req.ContentLength = n
	resp, err := c.http.Do(req)
	if err != nil {
		var changed *keys.ChangedCertError
		if errors.As(err, &changed) {
			return 0, changed
		}
		var refused *PinRefusedError
		if errors.As(err, &refused) {
			return 0, refused
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, &ConnError{Node: c.node, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return 0, decodeError(resp)
	}
	var u api.Upload
	if err := json.NewDecoder(resp.Body).Decode(&u); err != nil {
		return 0, err
	}
	return u.Size, nil
}

// Presented returns the DER of the certificate node presents now, without
// checking it against any pin. It is only for comparing with a fingerprint
// known from an authenticated source; nothing is sent to the node.
func Presented(ctx context.Context, node string) ([]byte, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", node)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ConnError{Node: node, Err: err}
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, &ConnError{Node: node, Err: errors.New("node presented no certificate")}
	}
	return certs[0].Raw, nil
}

// CloseIdle closes the connections the client keeps alive: a command ends
// by letting the node free their places (its connection limits count
// them) rather than leaving them to the node's idle timeout.
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }
