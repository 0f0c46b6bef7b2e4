package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// MaxBody bounds every JSON request body.
const MaxBody = 1 << 20

// DecodeRequest reads one JSON request body into v: at most MaxBody bytes,
// no unknown fields, nothing after the value. Its errors are coded and never
// quote the body, which may hold a password. It lives here, away from the
// agent, so that fuzzing it does not build the embedded database with fuzz
// instrumentation.
func DecodeRequest(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return Errorf(CodeBadRequest, "empty request body")
		}
		// The decoder's message may quote the body (a password): keep it generic.
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return Errorf(CodeBadRequest, "malformed JSON at byte %d", se.Offset)
		case errors.As(err, &te):
			return Errorf(CodeBadRequest, "field %q has the wrong type", te.Field)
		default:
			return Errorf(CodeBadRequest, "malformed request body")
		}
	}
	if dec.More() {
		return Errorf(CodeBadRequest, "trailing data after the JSON body")
	}
	return nil
}
