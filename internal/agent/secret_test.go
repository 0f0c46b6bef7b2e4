package agent

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestSecretDecodesAsEncodingJSON (issue 13 finding 14): a request's
// password is decoded into bytes the agent clears (secret), and decodes to
// exactly what encoding/json makes of the same JSON string.
func TestSecretDecodesAsEncodingJSON(t *testing.T) {
	for _, pw := range []string{"plain-password", `quo"te\back/slash`, "tab\tnl\nret\r\b\f", "<html>&amp;",
		"ünïcödé ✓", "emoji 😀 pair", "\u0000nul", "\u2028\u2029"} {
		b, err := json.Marshal(struct {
			P string `json:"password"`
		}{pw})
		if err != nil {
			t.Fatal(err)
		}
		var want struct {
			P string `json:"password"`
		}
		json.Unmarshal(b, &want)
		var got struct {
			P secret `json:"password"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q: %v", pw, err)
		}
		if !bytes.Equal(got.P, []byte(want.P)) {
			t.Fatalf("%q: secret %q, encoding/json %q", pw, got.P, want.P)
		}
	}
	for _, raw := range []string{`"\ud83d\ude00"`, `"\u00e9\u0041"`, `"\ud83d"`, `"a\/b"`} {
		var want string
		json.Unmarshal([]byte(raw), &want)
		var got secret
		if err := got.UnmarshalJSON([]byte(raw)); err != nil || string(got) != want {
			t.Fatalf("%s: secret %q (%v), encoding/json %q", raw, got, err, want)
		}
	}
	for _, bad := range []string{`1`, `"unterminated`, `"bad \x escape"`, `"\u12"`, `{}`} {
		var s secret
		if err := s.UnmarshalJSON([]byte(bad)); err == nil {
			t.Fatalf("%s accepted as %q", bad, s)
		}
	}
}
