package crypt

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"

	"filippo.io/age"
)

// The stanza section of a version 2 header, in binary (docs/format.md):
//
//	u16 n || stanza_1 || ... || stanza_n
//	stanza = u8 len || type || u8 argc || (u8 len || arg)*argc || u16 len || body
//
// Types and arguments are 1..255 printable ASCII characters without spaces
// (age's rule for stanza strings), so any age stanza fits.

func encodeStanzas(ss []*age.Stanza) ([]byte, error) {
	if len(ss) == 0 || len(ss) > maxV2Stanzas {
		return nil, fmt.Errorf("crypt: %d recipients (want 1..%d)", len(ss), maxV2Stanzas)
	}
	out := binary.BigEndian.AppendUint16(nil, uint16(len(ss)))
	for _, s := range ss {
		if !stanzaString(s.Type) || len(s.Type) > maxStanzaType {
			return nil, fmt.Errorf("crypt: recipient stanza type %q cannot be stored", s.Type)
		}
		if len(s.Args) > maxStanzaArgs || len(s.Body) > maxStanzaBody {
			return nil, fmt.Errorf("crypt: recipient stanza %s too large", s.Type)
		}
		out = append(out, byte(len(s.Type)))
		out = append(out, s.Type...)
		out = append(out, byte(len(s.Args)))
		for _, a := range s.Args {
			if !stanzaString(a) {
				return nil, fmt.Errorf("crypt: recipient stanza %s has an argument that cannot be stored", s.Type)
			}
			out = append(out, byte(len(a)))
			out = append(out, a...)
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(s.Body)))
		out = append(out, s.Body...)
	}
	if len(out) > maxV2SectionLen {
		return nil, fmt.Errorf("crypt: recipient stanzas take %d bytes, more than %d", len(out), maxV2SectionLen)
	}
	return out, nil
}

// decodeStanzas parses the stanza section strictly: every length in range,
// every string printable, nothing left over. A failure is a *CorruptError:
// the checksum matched, so the section was made this way on purpose or by a
// broken writer.
func decodeStanzas(b []byte) ([]*age.Stanza, error) {
	bad := func(off int, why string) error {
		return &CorruptError{Offset: int64(offV2Stanzas + off), Chunk: -1, Reason: "malformed recipient stanzas: " + why}
	}
	p := 0
	u8 := func() (int, bool) {
		if p+1 > len(b) {
			return 0, false
		}
		p++
		return int(b[p-1]), true
	}
	u16 := func() (int, bool) {
		if p+2 > len(b) {
			return 0, false
		}
		p += 2
		return int(binary.BigEndian.Uint16(b[p-2:])), true
	}
	str := func() (string, bool) {
		n, ok := u8()
		if !ok || n == 0 || p+n > len(b) {
			return "", false
		}
		s := string(b[p : p+n])
		p += n
		return s, stanzaString(s)
	}
	n, ok := u16()
	if !ok || n == 0 || n > maxV2Stanzas {
		return nil, bad(0, "stanza count out of range")
	}
	ss := make([]*age.Stanza, 0, n)
	for i := 0; i < n; i++ {
		start := p
		typ, ok := str()
		if !ok || len(typ) > maxStanzaType {
			return nil, bad(start, fmt.Sprintf("stanza %d: type", i+1))
		}
		argc, ok := u8()
		if !ok || argc > maxStanzaArgs {
			return nil, bad(start, fmt.Sprintf("stanza %d: argument count", i+1))
		}
		s := &age.Stanza{Type: typ, Args: make([]string, 0, argc)}
		for j := 0; j < argc; j++ {
			a, ok := str()
			if !ok {
				return nil, bad(start, fmt.Sprintf("stanza %d: argument %d", i+1, j+1))
			}
			s.Args = append(s.Args, a)
		}
		blen, ok := u16()
		if !ok || blen > maxStanzaBody || p+blen > len(b) {
			return nil, bad(start, fmt.Sprintf("stanza %d: body length", i+1))
		}
		s.Body = append([]byte(nil), b[p:p+blen]...)
		p += blen
		ss = append(ss, s)
	}
	if p != len(b) {
		return nil, bad(p, "bytes after the last stanza")
	}
	return ss, nil
}

// stanzaString: 1..255 bytes of printable ASCII without space (age's
// VCHAR rule for stanza types and arguments).
func stanzaString(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func b64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

func unb64(s string) ([]byte, error) { return base64.RawStdEncoding.Strict().DecodeString(s) }

func utoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// atou accepts only canonical decimal (no sign, no leading zeros), so one
// header has one spelling.
func atou(s string) (uint32, bool) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || strconv.FormatUint(v, 10) != s {
		return 0, false
	}
	return uint32(v), true
}
