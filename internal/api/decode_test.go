package api

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func decodeBody(body []byte, v any) error {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	return DecodeRequest(httptest.NewRecorder(), r, v)
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		code Code
	}{
		{"empty", "", CodeBadRequest},
		{"malformed", `{"password":`, CodeBadRequest},
		{"unknown field", `{"pasword":"x"}`, CodeBadRequest},
		{"wrong type", `{"password":5}`, CodeBadRequest},
		{"trailing data", `{"password":"abcdefgh"} {}`, CodeBadRequest},
		{"too large", `{"password":"` + strings.Repeat("a", MaxBody) + `"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req BackupRequest
			err := decodeBody([]byte(tc.body), &req)
			if err == nil {
				t.Fatal("accepted")
			}
			var mbe *http.MaxBytesError
			if tc.code == "" {
				if !errors.As(err, &mbe) {
					t.Fatalf("err %v, want MaxBytesError", err)
				}
				return
			}
			if CodeOf(err) != tc.code {
				t.Fatalf("code %q (%v), want %q", CodeOf(err), err, tc.code)
			}
		})
	}
}

// FuzzDecodeRequest: any body gives a value or a clear error, never a panic,
// and an error never quotes the body (which may hold a password).
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"password":"Passw0rd-secret"}`))
	f.Add([]byte(`{"device":"/mnt","force":true}`))
	f.Add([]byte(`{"upload_id":"x","ns":["a.*"],"drop":true}`))
	f.Add([]byte(`{"password":"Passw0rd-secret"`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{&BackupRequest{}, &SetAsBackupRequest{}, &RestoreRequest{}, &RestoreSensitiveRequest{}} {
			err := decodeBody(body, v)
			if err == nil {
				continue
			}
			var mbe *http.MaxBytesError
			if CodeOf(err) == "" && !errors.As(err, &mbe) {
				t.Fatalf("uncoded error %v", err)
			}
			if len(body) >= 8 && strings.Contains(err.Error(), string(body)) {
				t.Fatalf("error quotes the body: %v", err)
			}
			if strings.Contains(err.Error(), "Passw0rd-secret") {
				t.Fatalf("error quotes a password: %v", err)
			}
		}
	})
}
