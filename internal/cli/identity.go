package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"filippo.io/age"
	"github.com/spf13/pflag"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/client"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/keys"
)

// IdentityOptions choose the private keys that open a backup encrypted to
// public keys (format v2). They are read on this workstation only: a
// node-side restore receives the one file's key, never an identity.
type IdentityOptions struct {
	// Identities are --identity files; none means the CLI key.
	Identities stringList
}

func (o *IdentityOptions) identityFlags(fs *pflag.FlagSet) {
	fs.Var(&o.Identities, "identity", "open a backup encrypted to public keys with the private key `FILE` (repeat for more; default: the CLI key in $A0CLI_HOME)")
}

// load returns the identities to try: the --identity files, or the CLI key
// in $A0CLI_HOME when there is one.
func (o *IdentityOptions) load(env *Env) ([]age.Identity, error) {
	if len(o.Identities) == 0 {
		id, err := keys.CLIIdentity(env.Home)
		if errors.Is(err, keys.ErrNoKey) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []age.Identity{id}, nil
	}
	var out []age.Identity
	for _, path := range o.Identities {
		ids, err := keys.LoadIdentities(path)
		var pe *keys.PermissionError
		switch {
		case errors.As(err, &pe):
			return nil, err
		case errors.Is(err, fs.ErrNotExist):
			return nil, &NotFoundError{Msg: fmt.Sprintf("no such identity file: %s", path)}
		case err != nil:
			return nil, usagef("--identity: %v", err)
		}
		out = append(out, ids...)
	}
	return out, nil
}

// givenPassword returns a password given without a prompt (argument,
// --password, --password-file, the environment), or "".
func (p *PasswordOptions) givenPassword(env *Env) (string, error) {
	if p.Password == "" && p.PasswordFile == "" && p.Positional == "" {
		for _, name := range p.EnvVars {
			if v := env.Getenv(name); v != "" {
				return v, nil
			}
		}
		return "", nil
	}
	return p.resolve(env, false)
}

// passwordGiven reports whether a password was given without a prompt.
func (p *PasswordOptions) passwordGiven(env *Env) bool {
	if p.Password != "" || p.PasswordFile != "" || p.Positional != "" {
		return true
	}
	for _, name := range p.EnvVars {
		if env.Getenv(name) != "" {
			return true
		}
	}
	return false
}

// canPrompt reports whether a password prompt is possible.
func canPrompt(env *Env) bool { return env.Interactive || env.PromptPassword != nil }

// unwrapFileKey opens a version 2 header with the identities and the
// password given, and asks for a password (when it can) if none of them
// opens it. The caller clears the key.
func unwrapFileKey(env *Env, hdr []byte, ids []age.Identity, pw *PasswordOptions) ([]byte, error) {
	given, err := pw.givenPassword(env)
	if err != nil {
		return nil, err
	}
	u := crypt.Unlock{Identities: ids, Password: []byte(given)}
	fk, err := crypt.UnwrapFileKey(bytes.NewReader(hdr), u)
	if errors.Is(err, crypt.ErrWrongKey) && given == "" && canPrompt(env) {
		// No identity opens it: it may also have a password.
		p, perr := pw.resolve(env, false)
		if perr != nil {
			return nil, perr
		}
		fk, err = crypt.UnwrapFileKey(bytes.NewReader(hdr), crypt.Unlock{Password: []byte(p)})
	}
	if errors.Is(err, crypt.ErrWrongKey) {
		if len(ids) == 0 {
			return nil, fmt.Errorf("%w: this backup is encrypted to public keys and there is no CLI key here; give --identity FILE (or its password)", err)
		}
		return nil, fmt.Errorf("%w: it is encrypted to other keys than the identities given (`a0cli verify FILE` lists its recipients as SHA256: fingerprints, to find among `a0agent keys`; give --identity FILE with one of them)", err)
	}
	return fk, err
}

// readLocalHeader returns the header of a local backup file, or nil when the
// file is not an a0 file (the caller's usual path reports that).
func readLocalHeader(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &NotFoundError{Msg: fmt.Sprintf("no such file: %s", path)}
		}
		return nil, err
	}
	defer f.Close()
	h, err := crypt.ReadHeader(f)
	if errors.Is(err, crypt.ErrNotA0) {
		return nil, nil
	}
	return h, err
}

// readStoredHeader fetches only the header of the node's stored backup.
// It returns nil, nil when the node has none (restore then says so).
func readStoredHeader(ctx context.Context, c *client.Client) ([]byte, error) {
	d, err := c.Get(ctx, api.SlotBackup, 0, "")
	if api.CodeOf(err) == api.CodeNotFound || api.CodeOf(err) == api.CodeNotBackupRole {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.Body.Close()
	h, err := crypt.ReadHeader(d.Body)
	if errors.Is(err, crypt.ErrNotA0) {
		return nil, nil
	}
	return h, err
}
