package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// maxBody bounds what the harness reads of an answer.
const maxBody = 4 << 20

// client sends the harness's requests to one base URL.
type client struct {
	base    string
	http    *http.Client
	timeout time.Duration // per request
}

// newClient returns a client for base keeping up to conns connections
// open, so that every request in flight can have one.
func newClient(base string, conns int, timeout time.Duration) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	tr.DisableCompression = true
	// Redirects are answers to measure, not to follow (one could lead off
	// this machine).
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &client{base: base, http: &http.Client{Transport: tr, CheckRedirect: noRedirect}, timeout: timeout}
}

// close drops the client's idle connections.
func (c *client) close() { c.http.CloseIdleConnections() }

// answer is what came back from a request.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// request is one call: method, path (with its query), an optional bearer
// token, JSON body and extra headers.
type request struct {
	method, path, token string
	body                any
	header              map[string]string
}

// do sends req and reads the whole answer. Its error kind is "" when the
// status is want; otherwise the status ("503"), "timeout" or "network".
func (c *client) do(ctx context.Context, req request, want int) (answer, string) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if req.body != nil {
		b, err := json.Marshal(req.body)
		if err != nil {
			return answer{}, "encode"
		}
		body = bytes.NewReader(b)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, c.base+req.path, body)
	if err != nil {
		return answer{}, "request"
	}
	if req.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if req.token != "" {
		hr.Header.Set("Authorization", "Bearer "+req.token)
	}
	for k, v := range req.header {
		hr.Header.Set(k, v)
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return answer{}, errorKind(ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return answer{}, errorKind(ctx, err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	if a.status != want {
		return a, strconv.Itoa(a.status)
	}
	return a, ""
}

// errorKind names a failed exchange: "timeout" when the request's own
// deadline passed or its context was cancelled, else "network".
func errorKind(ctx context.Context, err error) string {
	var ne net.Error
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	return "network"
}

// call is do for setup: an unexpected answer is an error that says what
// was asked and what came back.
func (c *client) call(ctx context.Context, req request, want int, out any) (answer, error) {
	a, kind := c.do(ctx, req, want)
	if kind != "" {
		detail := string(a.body)
		if len(detail) > 300 {
			detail = detail[:300] + "…"
		}
		return a, fmt.Errorf("%s %s: %s %s", req.method, req.path, kind, detail)
	}
	if out != nil {
		if err := json.Unmarshal(a.body, out); err != nil {
			return a, fmt.Errorf("%s %s: decode the answer: %w", req.method, req.path, err)
		}
	}
	return a, nil
}

// query makes a query string of pairs, leaving out empty values.
func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}
