package edge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/services/auth"
	"github.com/eventshop/eventshop/internal/services/payment"
)

// TestWriteError pins the one mapping of errors to problems: status,
// code and the headers a client acts on.
func TestWriteError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Real clients of servers that are not there (nothing listens on
	// port 1), and PostgreSQL's error at a shutdown.
	_, pgDown := pgconn.Connect(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	redisClient := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	redisDown := redisClient.Get(ctx, "k").Err()
	redisClient.Close()
	cases := []struct {
		err        error
		status     int
		code       string
		retryAfter bool
	}{
		{domain.NotFound("order", "x"), 404, "order_not_found", false},
		{fmt.Errorf("wrapped: %w", domain.Conflict("insufficient_stock", "none left")), 409, "insufficient_stock", false},
		{domain.Fields{{Field: "price", Message: "too high"}}.Err(), 422, "validation_failed", false},
		{domain.ErrForbidden, 403, "", false},
		{domain.ErrPreconditionFailed, 412, "", false},
		{domain.ErrBadCredentials, 401, "", false},
		{domain.ErrContention, 503, "", true},
		{auth.ErrInvalidToken, 401, "", false},
		{&payment.DeclinedError{Reason: "insufficient_funds"}, 402, "insufficient_funds", false},
		{edge.BadRequest("no"), 400, "", false},
		{edge.Invalid("payment_method", "required"), 422, "", false},
		{edge.Unavailable(errors.New("redis down")), 503, "", true},
		{fmt.Errorf("refresh: %w", redisDown), 503, "", true},
		{fmt.Errorf("append: %w", pgDown), 503, "", true},
		{fmt.Errorf("append: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}), 503, "", true},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), 503, "", true},
		{&pgconn.PgError{Code: "23505", Message: "duplicate key"}, 500, "", false},
		{errors.New("boom"), 500, "", false},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		edge.WriteError(w, httptest.NewRequest(http.MethodGet, "/", nil), c.err)
		var p struct {
			Status int    `json:"status"`
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
			t.Fatalf("%v: body %q: %v", c.err, w.Body, err)
		}
		if w.Code != c.status || p.Status != c.status || p.Code != c.code {
			t.Errorf("%v: got %d (body %d, code %q), want %d code %q", c.err, w.Code, p.Status, p.Code, c.status, c.code)
		}
		if got := w.Header().Get("Retry-After") != ""; got != c.retryAfter {
			t.Errorf("%v: Retry-After set %v, want %v", c.err, got, c.retryAfter)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%v: Content-Type %q", c.err, ct)
		}
		if c.status == 500 && strings.Contains(p.Detail, "boom") {
			t.Errorf("a 500 shows its cause: %q", p.Detail)
		}
	}
}

// TestDecode pins strict decoding: one object, known members, JSON types.
func TestDecode(t *testing.T) {
	cases := []struct {
		body, ctype string
		status      int // 0: decodes
	}{
		{`{"n": 1}`, "application/json", 0},
		{`{"n": 1}`, "application/merge-patch+json", 0},
		{`{"n": 1}`, "text/plain", 415},
		{`[1]`, "", 400},
		{`{"n": 1} {}`, "", 400},
		{`{"n": 1, "m": 2}`, "", 400},
		{`{"n": "1"}`, "", 422},
		{`{"n": 1`, "", 400},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(c.body))
		if c.ctype != "" {
			r.Header.Set("Content-Type", c.ctype)
		}
		var v struct {
			N int `json:"n"`
		}
		status, err := decodeStatus(r, &v)
		if status != c.status {
			t.Errorf("%s (%s): status %d, want %d (err %v)", c.body, c.ctype, status, c.status, err)
		}
	}
}

// decodeStatus decodes r's body into v and returns the status its error
// answers with, 0 when it decoded.
func decodeStatus(r *http.Request, v any) (int, error) {
	err := edge.Decode(r, v)
	if err == nil {
		return 0, nil
	}
	w := httptest.NewRecorder()
	edge.WriteError(w, r, err)
	return w.Code, err
}

// TestDecodeMatchesNamesExactly: member names match the fields' names
// exactly, at every depth (encoding/json alone would take "N" for "n"),
// while what a field decodes itself (raw metadata, a map's keys) keeps
// its own names.
func TestDecodeMatchesNamesExactly(t *testing.T) {
	type line struct {
		ProductID string `json:"product_id"`
		Quantity  int    `json:"quantity"`
	}
	type body struct {
		N        int               `json:"n"`
		Items    []line            `json:"items"`
		Metadata json.RawMessage   `json:"metadata"`
		Labels   map[string]string `json:"labels"`
		Card     *struct {
			Number string `json:"card_number"`
		} `json:"payment_method"`
	}
	for doc, want := range map[string]int{
		`{"n": 1, "items": [{"product_id": "p", "quantity": 2}], "metadata": {"Any": {"CASE": 1}}, "labels": {"K": "v"}}`: 0,
		`{"payment_method": {"card_number": "4242"}}`: 0,
		`{"N": 1}`:         400,
		`{"n": 1, "N": 2}`: 400,
		`{"items": [{"product_id": "p", "Quantity": 2}]}`: 400,
		`{"payment_method": {"CARD_NUMBER": "4242"}}`:     400,
	} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(doc))
		var v body
		status, err := decodeStatus(r, &v)
		if status != want {
			t.Errorf("%s: status %d, want %d (err %v)", doc, status, want, err)
		}
	}
}

func TestIfMatchAndIDs(t *testing.T) {
	for h, want := range map[string]int64{`"3"`: 3, `W/"7"`: 7} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("If-Match", h)
		if v, ok, err := edge.IfMatch(r); !ok || err != nil || v != want {
			t.Errorf("If-Match %s: %d %v %v", h, v, ok, err)
		}
	}
	for _, h := range []string{"", "*"} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("If-Match", h)
		if _, ok, err := edge.IfMatch(r); ok || err != nil {
			t.Errorf("If-Match %q: ok %v err %v, want any version", h, ok, err)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set("If-Match", `"-1"`)
	if _, _, err := edge.IfMatch(r); err == nil {
		t.Error("If-Match -1 accepted")
	}
	if id, ok := edge.CanonicalID("6F9619FF-8B86-D011-B42D-00CF4FC964FF"); !ok || id != "6f9619ff-8b86-d011-b42d-00cf4fc964ff" {
		t.Errorf("upper-case UUID: %q %v", id, ok)
	}
	for _, bad := range []string{"6f9619ff8b86d011b42d00cf4fc964ff", "{6f9619ff-8b86-d011-b42d-00cf4fc964ff}", "x"} {
		if _, ok := edge.CanonicalID(bad); ok {
			t.Errorf("%q taken as an id", bad)
		}
	}
}
