package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/edge/gateway"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
)

// blocker is a handler that holds every request to a path under /block
// until released, and answers anything else at once.
type blocker struct {
	release chan struct{}
	mu      sync.Mutex
	entered int
}

func newBlocker() *blocker { return &blocker{release: make(chan struct{})} }

func (b *blocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/block") {
		b.mu.Lock()
		b.entered++
		b.mu.Unlock()
		select {
		case <-b.release:
		case <-r.Context().Done():
		}
	}
	_, _ = io.WriteString(w, "ok")
}

func (b *blocker) inside() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.entered
}

// outcomes counts what the gateway tells Config.Observe.
type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) observe(class, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[class+" "+outcome]++
}

func (o *outcomes) count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[key]
}

// answer is what a client got.
type answer struct {
	status     int
	retryAfter string
	ctype      string
	err        error
}

// do sends method path to srv, with header name/value pairs, and returns
// the answer.
func do(srv *httptest.Server, method, path string, hdr ...string) answer {
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		return answer{err: err}
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), ctype: resp.Header.Get("Content-Type")}
}

// async sends method path (with header pairs) to srv in the background;
// the answer arrives on the channel.
func async(srv *httptest.Server, method, path string, hdr ...string) <-chan answer {
	c := make(chan answer, 1)
	go func() { c <- do(srv, method, path, hdr...) }()
	return c
}

// wantBusy checks a is the gateway's 503 problem with Retry-After: 1.
func wantBusy(t *testing.T, what string, a answer) {
	t.Helper()
	if a.err != nil || a.status != http.StatusServiceUnavailable || a.retryAfter != "1" || a.ctype != "application/problem+json" {
		t.Errorf("%s: %+v, want 503 application/problem+json with Retry-After: 1", what, a)
	}
}

// TestAdmissionShedsBeyondBudget: with every read slot taken and the
// read queue full, one more read is refused at once (the blockers are
// still held when it returns) with 503 and Retry-After; probes, writes
// and reads waiting for X-Min-Position, which have budgets of their own,
// are still served; and once the blockers are released the queued reads
// are served and new ones admitted again.
func TestAdmissionShedsBeyondBudget(t *testing.T) {
	const limit, queue = 3, 2
	b, seen := newBlocker(), &outcomes{}
	g, err := gateway.New(gateway.Config{MaxInFlight: limit, MaxQueue: queue, QueueWait: time.Minute, Observe: seen.observe}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Middleware(b))
	defer srv.Close()
	released := false
	defer func() {
		if !released {
			close(b.release)
		}
	}()

	var held []<-chan answer
	for range limit {
		held = append(held, async(srv, http.MethodGet, "/block"))
	}
	testwait.Until(t, 10*time.Second, func() string {
		if n := b.inside(); n < limit {
			return "blockers not all inside yet"
		}
		return ""
	})
	// The queue fills: these wait (a minute at most) for a slot.
	for range queue {
		held = append(held, async(srv, http.MethodGet, "/block"))
	}
	testwait.Until(t, 10*time.Second, func() string {
		if in, q := g.Occupancy(gateway.ClassRead); in != limit || q != queue {
			return "reads in flight and queued: want the budget and the queue full"
		}
		return ""
	})

	wantBusy(t, "a read beyond the queue", do(srv, http.MethodGet, "/api/products"))
	if n := b.inside(); n != limit {
		t.Fatalf("%d requests reached the handler, want %d", n, limit)
	}
	if got := seen.count("read queue_full"); got != 1 {
		t.Errorf("queue_full observed %d times, want 1", got)
	}
	// The refusal came while every slot was still held: it did not wait
	// for one.
	for i, c := range held {
		select {
		case a := <-c:
			t.Fatalf("held request %d answered early: %+v", i, a)
		default:
		}
	}
	if a := do(srv, http.MethodGet, "/healthz"); a.status != http.StatusOK {
		t.Errorf("/healthz with the reads full: %+v", a)
	}
	if a := do(srv, http.MethodPost, "/api/orders"); a.status != http.StatusOK {
		t.Errorf("a write with the reads full: %+v", a)
	}
	if a := do(srv, http.MethodGet, "/api/products", "X-Min-Position", "1.1"); a.status != http.StatusOK {
		t.Errorf("a read with X-Min-Position with the reads full: %+v", a)
	}

	close(b.release)
	released = true
	for i, c := range held {
		if a := <-c; a.status != http.StatusOK {
			t.Errorf("held request %d after the release: %+v", i, a)
		}
	}
	testwait.Until(t, 10*time.Second, func() string {
		if in, q := g.Occupancy(gateway.ClassRead); in != 0 || q != 0 {
			return "slots not all returned"
		}
		return ""
	})
	for i := range 2 * (limit + queue) {
		if a := do(srv, http.MethodGet, "/api/products"); a.status != http.StatusOK {
			t.Fatalf("read %d after recovery: %+v", i, a)
		}
	}
}

// TestAdmissionQueueWait: a request queued for a slot waits at most
// QueueWait: refused while the slot is still held, it is answered 503;
// one that gets a slot within its wait is served.
func TestAdmissionQueueWait(t *testing.T) {
	b, seen := newBlocker(), &outcomes{}
	g, err := gateway.New(gateway.Config{MaxInFlight: 1, MaxQueue: 8, QueueWait: 20 * time.Millisecond, Observe: seen.observe}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Middleware(b))
	defer srv.Close()

	held := async(srv, http.MethodPost, "/block")
	testwait.Until(t, 10*time.Second, func() string {
		if b.inside() < 1 {
			return "blocker not inside"
		}
		return ""
	})
	wantBusy(t, "a write queued past its wait", do(srv, http.MethodPost, "/api/orders"))
	if got := seen.count("write queue_wait"); got != 1 {
		t.Errorf("queue_wait observed %d times, want 1", got)
	}
	select {
	case a := <-held:
		t.Fatalf("the blocker answered before the queued request gave up: %+v", a)
	default:
	}
	close(b.release)
	if a := <-held; a.status != http.StatusOK {
		t.Errorf("blocker: %+v", a)
	}

	// A slot freed within the wait goes to the waiting request.
	b = newBlocker()
	g, err = gateway.New(gateway.Config{MaxInFlight: 1, MaxQueue: 8, QueueWait: time.Minute}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(g.Middleware(b))
	defer srv2.Close()
	held = async(srv2, http.MethodGet, "/block")
	testwait.Until(t, 10*time.Second, func() string {
		if b.inside() < 1 {
			return "blocker not inside"
		}
		return ""
	})
	queued := async(srv2, http.MethodGet, "/api/products")
	testwait.Until(t, 10*time.Second, func() string {
		if _, q := g.Occupancy(gateway.ClassRead); q != 1 {
			return "the second read is not queued"
		}
		return ""
	})
	close(b.release)
	if a := <-queued; a.status != http.StatusOK {
		t.Errorf("queued read after the slot was freed: %+v", a)
	}
	if a := <-held; a.status != http.StatusOK {
		t.Errorf("blocker: %+v", a)
	}
}

// TestAdmissionClientGone: a request whose client leaves while it waits
// gives its place up, and the slots it would have taken stay usable.
func TestAdmissionClientGone(t *testing.T) {
	b := newBlocker()
	g, err := gateway.New(gateway.Config{MaxInFlight: 1, MaxQueue: 1, QueueWait: time.Minute}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := g.Middleware(b)
	srv := httptest.NewServer(h)
	defer srv.Close()
	held := async(srv, http.MethodGet, "/block")
	testwait.Until(t, 10*time.Second, func() string {
		if b.inside() < 1 {
			return "blocker not inside"
		}
		return ""
	})
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/products", nil))
	}()
	testwait.Until(t, 10*time.Second, func() string {
		if _, q := g.Occupancy(gateway.ClassRead); q != 1 {
			return "not queued"
		}
		return ""
	})
	cancel()
	<-gone
	if in, q := g.Occupancy(gateway.ClassRead); in != 1 || q != 0 {
		t.Errorf("after the client left: %d in flight, %d queued; want 1 and 0", in, q)
	}
	close(b.release)
	<-held
	if a := do(srv, http.MethodGet, "/api/products"); a.status != http.StatusOK {
		t.Errorf("read after: %+v", a)
	}
}

// TestFreshBudget: reads waiting for X-Min-Position have a budget of
// their own, larger than the reads': once it is full, another such read
// is refused, and plain reads are still served.
func TestFreshBudget(t *testing.T) {
	b := newBlocker()
	g, err := gateway.New(gateway.Config{MaxInFlight: 1, MaxQueue: 0}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Middleware(b))
	defer srv.Close()
	defer close(b.release)
	held := 0
	for {
		c := async(srv, http.MethodGet, "/block", "X-Min-Position", "1.1")
		var refused *answer
		testwait.Until(t, 10*time.Second, func() string {
			select {
			case a := <-c:
				refused = &a
				return ""
			default:
			}
			if b.inside() > held {
				return ""
			}
			return "the read neither waits in the handler nor was answered"
		})
		if refused != nil {
			wantBusy(t, "a read with X-Min-Position beyond its budget", *refused)
			break
		}
		if held++; held > 100 {
			t.Fatal("no bound on the reads with X-Min-Position")
		}
	}
	if held <= 1 {
		t.Errorf("%d reads with X-Min-Position admitted, want more than the reads' budget of 1", held)
	}
	if a := do(srv, http.MethodGet, "/api/products"); a.status != http.StatusOK {
		t.Errorf("a plain read with the waiting reads' budget full: %+v", a)
	}
}

// TestAdmissionOff: without MaxInFlight nothing is bounded.
func TestAdmissionOff(t *testing.T) {
	b := newBlocker()
	g, err := gateway.New(gateway.Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Middleware(b))
	defer srv.Close()
	defer close(b.release)
	for range 20 {
		async(srv, http.MethodGet, "/block")
	}
	testwait.Until(t, 10*time.Second, func() string {
		if b.inside() < 20 {
			return "not all 20 requests reached the handler"
		}
		return ""
	})
}

// TestDefaultMaxInFlight: the default grows with the CPUs the process
// may use.
func TestDefaultMaxInFlight(t *testing.T) {
	if n := gateway.DefaultMaxInFlight(); n < gateway.InFlightPerCPU {
		t.Errorf("DefaultMaxInFlight %d, want at least %d", n, gateway.InFlightPerCPU)
	}
}
