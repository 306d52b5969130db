package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/eventshop/eventshop/eventstore"
)

// World is what setup made ready for the timed window: who shops, what
// they can look at and what they can order.
type World struct {
	Shoppers   []Shopper
	Products   []string // ids to view
	Orderable  []string // ids with stock enough for the whole run
	Categories []string
	Total      int // products in the catalogue
}

// Shopper is a signed-in customer of the pool.
type Shopper struct {
	Email string
	Token string
}

// The shoppers' accounts: the same on every run, so a second run against
// the same system signs them in instead of registering more.
const (
	shopperPassword = "load-test-shopper"
	shopperEmail    = "load-shopper-%04d@example.com"
)

// orderableStock is the least available stock of a product the flow may
// order: the seeded products hold a million each.
const (
	seedStock      = 1_000_000
	orderableStock = 10_000
)

type tokens struct {
	AccessToken string `json:"access_token"`
}

type page[T any] struct {
	Items []T `json:"items"`
	Total int `json:"total"`
}

type productDoc struct {
	ID        string `json:"id"`
	Inventory struct {
		Available int64 `json:"available"`
	} `json:"inventory"`
}

// signIn returns an access token for email and password.
func (c *client) signIn(ctx context.Context, email, password string) (string, error) {
	var t tokens
	_, err := c.call(ctx, request{method: "POST", path: "/api/auth/login",
		body: map[string]string{"email": email, "password": password}}, http.StatusOK, &t)
	return t.AccessToken, err
}

// shoppers registers (or finds registered) and signs in n shoppers,
// workers at a time: password hashing stays out of the timed window.
func (c *client) shoppers(ctx context.Context, n, workers int, log io.Writer) ([]Shopper, error) {
	start := time.Now()
	out := make([]Shopper, n)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(workers, 1))
	for i := range n {
		g.Go(func() error {
			email := fmt.Sprintf(shopperEmail, i)
			_, kind := c.do(ctx, request{method: "POST", path: "/api/auth/register",
				body: map[string]string{"email": email, "password": shopperPassword, "full_name": fmt.Sprintf("Shopper %d", i)}},
				http.StatusCreated)
			if kind != "" && kind != "409" { // 409: registered by an earlier run
				return fmt.Errorf("register %s: %s", email, kind)
			}
			token, err := c.signIn(ctx, email, shopperPassword)
			if err != nil {
				return fmt.Errorf("sign in shopper %d: %w", i, err)
			}
			out[i] = Shopper{Email: email, Token: token}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "setup: %d shoppers registered and signed in in %s\n", n, time.Since(start).Round(time.Millisecond))
	return out, nil
}

// catalogueTotal is how many products the listing counts.
func (c *client) catalogueTotal(ctx context.Context) (int, error) {
	var p page[productDoc]
	_, err := c.call(ctx, request{method: "GET", path: "/api/products?limit=1"}, http.StatusOK, &p)
	return p.Total, err
}

// admin holds an admin's access token and signs in again when it expires
// (a long seeding outlives one).
type admin struct {
	c               *client
	email, password string
	mu              sync.Mutex
	token           string
}

func (a *admin) get(ctx context.Context, stale string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && a.token != stale {
		return a.token, nil
	}
	t, err := a.c.signIn(ctx, a.email, a.password)
	if err != nil {
		return "", fmt.Errorf("sign in the admin %s: %w", a.email, err)
	}
	a.token = t
	return t, nil
}

// do sends req with the admin's token, signing in again once when the
// token has expired (401). Its error is a failed sign-in; what the
// request got is in the answer and kind, as client.do gives them.
func (a *admin) do(ctx context.Context, req request, want int) (answer, string, error) {
	for attempt := 0; ; attempt++ {
		token, err := a.get(ctx, "")
		if err != nil {
			return answer{}, "", err
		}
		req.token = token
		ans, kind := a.c.do(ctx, req, want)
		if kind != "401" || attempt > 0 {
			return ans, kind, nil
		}
		if _, err := a.get(ctx, token); err != nil {
			return ans, kind, err
		}
	}
}

// seed lists products LOAD-000001 … LOAD-<n> through the public API as
// an admin, workers at a time, unless the catalogue already counts n:
// a SKU that is taken (409) is one an earlier run listed. It shows its
// progress every two seconds, then waits until the listing counts n.
func (c *client) seed(ctx context.Context, a *admin, n, workers int, log io.Writer) error {
	total, err := c.catalogueTotal(ctx)
	if err != nil {
		return err
	}
	if total >= n {
		fmt.Fprintf(log, "setup: the catalogue holds %d products (≥ %d): no seeding\n", total, n)
		return nil
	}
	if _, err := a.get(ctx, ""); err != nil {
		return err
	}
	fmt.Fprintf(log, "setup: the catalogue holds %d products; listing LOAD-000001…LOAD-%06d (%d at a time)\n", total, n, workers)
	var next, created, existed atomic.Int64
	start := time.Now()
	stop := progress(2*time.Second, func() {
		done := created.Load() + existed.Load()
		el := time.Since(start)
		rate := float64(done) / max(el.Seconds(), 1e-3)
		eta := "-"
		if rate > 0 && done < int64(n) {
			eta = time.Duration(float64(int64(n)-done) / rate * float64(time.Second)).Round(time.Second).String()
		}
		fmt.Fprintf(log, "seed: %d/%d products (%d new, %d there already), %.0f/s, ETA %s\n", done, n, created.Load(), existed.Load(), rate, eta)
	})
	var (
		mu   sync.Mutex
		last eventstore.Position // of the last product listed
	)
	g, gctx := errgroup.WithContext(ctx)
	for range max(workers, 1) {
		g.Go(func() error {
			for {
				i := int(next.Add(1))
				if i > n {
					return nil
				}
				kind, pos, err := a.createProduct(gctx, i)
				if err != nil {
					return err
				}
				if kind == "409" {
					existed.Add(1)
					continue
				}
				created.Add(1)
				mu.Lock()
				if last.Less(pos) {
					last = pos
				}
				mu.Unlock()
			}
		})
	}
	err = g.Wait()
	stop()
	if err != nil {
		return err
	}
	return c.waitCatalogue(ctx, a, n, last, log)
}

// createProduct lists product i: 201, or 409 when its SKU is taken; a
// product listed comes with the position of its event.
func (a *admin) createProduct(ctx context.Context, i int) (string, eventstore.Position, error) {
	body := seedProduct(i)
	ans, kind, err := a.do(ctx, request{method: "POST", path: "/api/products", body: body}, http.StatusCreated)
	switch {
	case err != nil:
		return "", eventstore.Start, err
	case kind == "409":
		return kind, eventstore.Start, nil
	case kind == "":
		pos, err := eventstore.ParsePosition(ans.header.Get("X-Event-Position"))
		if err != nil {
			return "", eventstore.Start, fmt.Errorf("list product %s: X-Event-Position: %w", body["sku"], err)
		}
		return kind, pos, nil
	}
	return "", eventstore.Start, fmt.Errorf("list product %s: %s %.300s", body["sku"], kind, ans.body)
}

// waitCatalogue waits, up to ctx, until the listing counts n products:
// the catalogue is a projection of the log, behind the writes. It asks
// the projections' status (cheap) every second and counts the listing
// only once each of the catalogue's projections has got past after (the
// last product seeded) and reports no lag: a lag is what a runner last
// reported, and a runner deep in a batch reports none, so "no lag" alone
// let a window start while the product documents were still being
// written. A line shows the lag when it changed (at most every 5 s) or
// every 30 s.
func (c *client) waitCatalogue(ctx context.Context, a *admin, n int, after eventstore.Position, log io.Writer) error {
	start, shown, said := time.Now(), time.Now(), ""
	for {
		lag, status, err := a.catalogueLag(ctx, after)
		if err != nil {
			return err
		}
		if lag == 0 {
			total, err := c.catalogueTotal(ctx)
			if err != nil {
				return err
			}
			if total >= n {
				fmt.Fprintf(log, "setup: the catalogue lists %d products (caught up in %s)\n", total, time.Since(start).Round(time.Millisecond))
				return nil
			}
		}
		if since := time.Since(shown); (status != said && since >= 5*time.Second) || since >= 30*time.Second {
			shown, said = time.Now(), status
			fmt.Fprintf(log, "setup: waiting for the catalogue to catch up: %s\n", status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the catalogue did not catch up: %w; it reports %s", ctx.Err(), status)
		case <-time.After(time.Second): // the runners report once a second
		}
	}
}

// catalogueLag is the largest lag in events of the catalogue's
// projections (products.* serves the product routes, catalog.* keeps the
// product documents) from GET /api/admin/projections, -1 when one is not
// measured yet or has not got past after, and their status in words: the
// timed window starts once both have caught up, so neither catches up
// during it.
func (a *admin) catalogueLag(ctx context.Context, after eventstore.Position) (int64, string, error) {
	reports, err := a.projections(ctx)
	if err != nil {
		return 0, "", err
	}
	var worst int64
	var statuses []string
	for _, r := range reports {
		if !strings.HasPrefix(r.Name, "catalog.") && !strings.HasPrefix(r.Name, "products.") {
			continue
		}
		lag := r.lag()
		status := fmt.Sprintf("%s %s, lag %d events", r.Name, r.Status, lag)
		if pos, err := eventstore.ParsePosition(r.Position); err != nil || pos.Less(after) {
			lag = -1
			status += fmt.Sprintf(", at %s, before %s", r.Position, after)
		}
		if lag < 0 || (worst >= 0 && lag > worst) {
			worst = lag
		}
		if r.Error != nil {
			status += ", last error: " + *r.Error
		}
		statuses = append(statuses, status)
	}
	if len(statuses) == 0 {
		return 0, "", errors.New("GET /api/admin/projections names no catalog.* or products.* projection")
	}
	return worst, strings.Join(statuses, "; "), nil
}

// projectionReport is an entry of GET /api/admin/projections.
type projectionReport struct {
	Name     string  `json:"name"`
	Position string  `json:"position"`
	Lag      *int64  `json:"lag"`
	Status   string  `json:"status"`
	Error    *string `json:"last_error"`
}

// lag is r's lag in events, -1 when not measured yet.
func (r projectionReport) lag() int64 {
	if r.Lag == nil {
		return -1
	}
	return *r.Lag
}

// projections reads GET /api/admin/projections.
func (a *admin) projections(ctx context.Context) ([]projectionReport, error) {
	var reports []projectionReport
	ans, kind, err := a.do(ctx, request{method: "GET", path: "/api/admin/projections"}, http.StatusOK)
	if err == nil && kind != "" {
		err = fmt.Errorf("GET /api/admin/projections: %s %.300s", kind, ans.body)
	}
	if err == nil {
		err = json.Unmarshal(ans.body, &reports)
	}
	return reports, err
}

// products collects the ids to view and order from the listing: up to
// maxIDs products, 100 a page.
func (c *client) products(ctx context.Context, maxIDs int) (all, orderable []string, err error) {
	for p := 1; len(all) < maxIDs; p++ {
		var pg page[productDoc]
		if _, err := c.call(ctx, request{method: "GET", path: "/api/products" + query("page", strconv.Itoa(p), "limit", "100")},
			http.StatusOK, &pg); err != nil {
			return nil, nil, err
		}
		for _, d := range pg.Items {
			all = append(all, d.ID)
			if d.Inventory.Available >= orderableStock {
				orderable = append(orderable, d.ID)
			}
		}
		if len(pg.Items) < 100 {
			break
		}
	}
	if len(orderable) == 0 {
		return nil, nil, errors.New("no product in the listing has stock enough to order: seed the catalogue (products LOAD-…)")
	}
	return all, orderable, nil
}

// categories lists the catalogue's category names.
func (c *client) categories(ctx context.Context) ([]string, error) {
	var cats struct {
		Items []struct {
			Name string `json:"name"`
		} `json:"items"`
	}
	if _, err := c.call(ctx, request{method: "GET", path: "/api/products/categories"}, http.StatusOK, &cats); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(cats.Items))
	for _, it := range cats.Items {
		if it.Name != "" {
			names = append(names, it.Name)
		}
	}
	return names, nil
}

// progress calls show every period until the returned stop is called,
// which calls it once more, as the final line.
func progress(period time.Duration, show func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				show()
			}
		}
	}()
	return func() { close(done); wg.Wait(); show() }
}
