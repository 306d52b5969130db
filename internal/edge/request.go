package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain"
)

// Decode reads one JSON object strictly into v: JSON content type, an
// object (not an array, string or null), unknown fields refused, nothing
// after the object. Its errors are WriteError's 400, 413, 415 or 422.
func Decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &requestError{status: http.StatusUnsupportedMediaType, detail: "send application/json"}
		}
	}
	body, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &requestError{status: http.StatusRequestEntityTooLarge, detail: fmt.Sprintf("the body is over %d bytes", MaxBodyBytes)}
	}
	if err != nil {
		return BadRequest("the body could not be read")
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return BadRequest("the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return BadRequest("the body must hold one JSON object and nothing after it")
		}
		var doc any
		if err := json.Unmarshal(body, &doc); err != nil {
			return BadRequest("malformed JSON")
		}
		if bad := exactNames(doc, reflect.TypeOf(v)); bad != "" {
			// What encoding/json matched case-insensitively.
			return BadRequest(fmt.Sprintf("unknown field %q (member names are case-sensitive)", bad))
		}
		return nil
	}
	var ute *json.UnmarshalTypeError
	switch {
	case errors.As(err, &ute) && ute.Field != "":
		return Invalid(ute.Field, fmt.Sprintf("%s must be %s", ute.Field, jsonKind(ute.Type)))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json reports unknown fields only by this message.
		return BadRequest(strings.TrimPrefix(err.Error(), "json: "))
	default:
		return BadRequest("malformed JSON")
	}
}

// jsonKind names, for a client, the JSON a Go type is read from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		if t == reflect.TypeFor[json.Number]() {
			return "a number"
		}
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	default:
		return "an object"
	}
}

// IfMatch reads If-Match: a version as ETag sends it ("3"); ok is false
// when the header is absent or * (any version).
func IfMatch(r *http.Request) (version int64, ok bool, err error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" || h == "*" {
		return 0, false, nil
	}
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(h, "W/"), `"`), 10, 64)
	if err != nil || v < 0 {
		return 0, false, BadRequest("If-Match must be an ETag this API gave out")
	}
	return v, true, nil
}

// CanonicalID is id as the event store names it: a hyphenated lower-case
// UUID; ok is false for anything else.
func CanonicalID(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 {
		return "", false
	}
	return u.String(), true
}

// PathID reads the {id} path parameter in its canonical form; anything
// else names nothing, so it is the domain's NotFound of kind (404).
func PathID(r *http.Request, kind string) (string, error) {
	id, ok := CanonicalID(chi.URLParam(r, "id"))
	if !ok {
		return "", domain.NotFound(kind, chi.URLParam(r, "id"))
	}
	return id, nil
}

// WriteJSON answers status with v as JSON. Unless the handler set its own
// Cache-Control, the answer is not to be stored (command answers).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
