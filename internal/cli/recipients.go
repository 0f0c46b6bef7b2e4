package cli

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/keys"
)

// RecipientKey is one recipient of a version 2 file, as verify shows it
// (recipient_keys in --json), in the fingerprint form `a0agent keys`,
// `a0cli show-key` and `backup --to` use.
type RecipientKey struct {
	// Type is the stanza's: ssh-ed25519, ssh-rsa, X25519 or password.
	Type string `json:"type"`
	// Tag is what an ssh stanza names its key by (age's: the first 4
	// bytes of the key's SHA-256, base64): "L1GR5w".
	Tag string `json:"tag,omitempty"`
	// FingerprintPrefix is as much of the key's "SHA256:..." fingerprint
	// as the tag tells (its first 5 characters after "SHA256:", 30 of the
	// tag's 32 bits): "SHA256:L1GR5", to find among `a0agent keys`.
	FingerprintPrefix string `json:"fingerprint_prefix,omitempty"`
	// Fingerprint is the whole fingerprint when the key is known here
	// (this workstation's CLI key).
	Fingerprint string `json:"fingerprint,omitempty"`
	// KnownAs says which key here it is.
	KnownAs string `json:"known_as,omitempty"`
	// Text is the stanza's description as crypt gives it (a password's
	// KDF and parameters).
	Text string `json:"text"`
}

// String is the `opens with:` line's text: crypt's description, then the
// fingerprint. "ssh-ed25519 L1GR5w (key SHA256:L1GR5...)".
func (k RecipientKey) String() string {
	switch {
	case k.Fingerprint != "" && k.KnownAs != "":
		return fmt.Sprintf("%s (key %s, %s)", k.Text, k.Fingerprint, k.KnownAs)
	case k.Fingerprint != "":
		return fmt.Sprintf("%s (key %s)", k.Text, k.Fingerprint)
	case k.FingerprintPrefix != "":
		return fmt.Sprintf("%s (key %s...)", k.Text, k.FingerprintPrefix)
	case k.Type == "X25519":
		return k.Text + " (an age key: the file does not say which)"
	}
	return k.Text
}

// knownKey is a public key this workstation can name.
type knownKey struct {
	tag, fingerprint, name string
}

// localKeys are the public keys this workstation knows: its CLI key.
func localKeys(env *Env) []knownKey {
	line, err := keys.PublicLine(env.Home)
	if err != nil {
		return nil
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil
	}
	return []knownKey{{tag: sshTag(pub), fingerprint: ssh.FingerprintSHA256(pub), name: "this workstation's CLI key"}}
}

// sshTag is the tag age's ssh stanzas name a key by.
func sshTag(pub ssh.PublicKey) string {
	sum := sha256.Sum256(pub.Marshal())
	return base64.RawStdEncoding.EncodeToString(sum[:4])
}

// recipientKeys turns crypt's stanza descriptions into RecipientKeys.
func recipientKeys(env *Env, descs []string) []RecipientKey {
	if len(descs) == 0 {
		return nil
	}
	known := localKeys(env)
	out := make([]RecipientKey, 0, len(descs))
	for _, d := range descs {
		k := RecipientKey{Text: d}
		typ, tag, _ := strings.Cut(d, " ")
		switch {
		case typ == "ssh-ed25519" || typ == "ssh-rsa":
			k.Type, k.Tag = typ, tag
			if raw, err := base64.RawStdEncoding.DecodeString(tag); err == nil && len(raw) == 4 {
				// The fingerprint is the base64 of the whole SHA-256:
				// its first 5 characters are the tag's first 30 bits.
				k.FingerprintPrefix = "SHA256:" + base64.RawStdEncoding.EncodeToString(raw)[:5]
			}
			for _, kk := range known {
				if kk.tag == tag {
					k.Fingerprint, k.KnownAs = kk.fingerprint, kk.name
				}
			}
		case strings.HasPrefix(d, "password"):
			k.Type = "password"
		default:
			k.Type = typ
		}
		out = append(out, k)
	}
	return out
}

// unopenedErr reports whether err says no key or password given opens the
// file (not that it is damaged).
func unopenedErr(err error) bool {
	return errors.Is(err, crypt.ErrWrongKey) || errors.Is(err, crypt.ErrWrongPassword)
}
