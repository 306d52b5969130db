package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/esdb"
	"github.com/eventshop/eventshop/eventstore/memory"
	"github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/testsupport/esdbtest"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// stores are the event store adapters every command test runs against:
// the in-memory fake, PostgreSQL, and EventStoreDB (the stand-in node, or
// a real one when EVENTSTORE_URL=esdb://… is set), each fresh per call.
func stores(t *testing.T) map[string]func(t *testing.T) eventstore.Store {
	t.Helper()
	return map[string]func(t *testing.T) eventstore.Store{
		"memory":   func(t *testing.T) eventstore.Store { return memory.New() },
		"postgres": func(t *testing.T) eventstore.Store { return openPG(t, pgtest.NewDatabase(t)) },
		"esdb":     openESDB,
	}
}

// openESDB opens an EventStoreDB store on a fresh stand-in node, or on the
// real node EVENTSTORE_URL names (whose log other tests share: the tests
// name their own streams), closed when t ends.
func openESDB(t *testing.T) eventstore.Store {
	t.Helper()
	url := os.Getenv("EVENTSTORE_URL")
	if !strings.HasPrefix(url, "esdb") {
		url = esdbtest.Start(t).URL()
	}
	s, err := esdb.Open(context.Background(), url, esdb.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open esdb store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eachStore runs fn as a subtest per adapter, in a stable order.
func eachStore(t *testing.T, fn func(t *testing.T, s eventstore.Store)) {
	t.Helper()
	all := stores(t)
	for _, name := range sortedKeys(all) {
		mk := all[name]
		t.Run(name, func(t *testing.T) { fn(t, mk(t)) })
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// openPG opens a PostgreSQL store on dbURL, closed when t ends.
func openPG(t *testing.T, dbURL string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dbURL, postgres.Options{
		Logger: slog.New(slog.DiscardHandler), PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("open postgres store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// clock is a controllable clock for commands.Config.Now, safe for
// concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one handler over one store with its clock and payments.
type env struct {
	store    eventstore.Store
	clock    *clock
	payments *payment.TestProcessor
	h        commands.Handlers
	cfg      commands.Config
}

// newEnv builds a handler over s with a controllable clock; opts adjust
// the configuration first.
func newEnv(t *testing.T, s eventstore.Store, opts ...func(*commands.Config)) *env {
	t.Helper()
	e := &env{store: s, clock: newClock(), payments: payment.NewTestProcessor()}
	e.cfg = commands.Config{
		Store: s, Payments: e.payments, Now: e.clock.Now,
		PaymentTimeout: time.Minute, ClaimGrace: time.Minute,
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.h = commands.New(e.cfg)
	return e
}

// another builds a second handler (another process) over the same store,
// clock and payments, with its own cache and locks.
func (e *env) another(opts ...func(*commands.Config)) commands.Handlers {
	cfg := e.cfg
	for _, o := range opts {
		o(&cfg)
	}
	return commands.New(cfg)
}

func serialize(on bool) func(*commands.Config) {
	return func(c *commands.Config) { c.Serialize = &on }
}

// Actors with made-up ids; commands take the actor as given.
func customer(id string) commands.Actor {
	return commands.Actor{ID: id, Roles: []string{user.RoleCustomer}}
}
func vendor(id string) commands.Actor {
	return commands.Actor{ID: id, Roles: []string{user.RoleVendor}}
}

var admin = commands.Actor{ID: "admin-1", Roles: []string{user.RoleAdmin}}

var (
	goodCard     = payment.Card{Number: payment.TestCardSuccess, ExpMonth: 12, ExpYear: time.Now().Year() + 3, CVC: "123"}
	declinedCard = payment.Card{Number: payment.TestCardDeclined, ExpMonth: 12, ExpYear: time.Now().Year() + 3, CVC: "123"}
)

// newProduct lists a product of vendor v with qty units and returns its id.
func (e *env) newProduct(t *testing.T, v commands.Actor, qty int64) product.State {
	t.Helper()
	p, _, err := e.h.Catalog.CreateProduct(context.Background(), v, commands.CreateProduct{
		SKU: "SKU-" + uuid.NewString()[:8], Name: "Widget", Price: 1250, Quantity: qty,
	})
	if err != nil {
		t.Fatalf("create product: %v", err)
	}
	return p
}

// product loads product id through a fresh handler, so no cache is
// involved.
func (e *env) product(t *testing.T, id string) product.State {
	t.Helper()
	p, _, err := commands.New(commands.Config{Store: e.store, Payments: e.payments}).Catalog.Product(context.Background(), id)
	if err != nil {
		t.Fatalf("load product %s: %v", id, err)
	}
	return p
}

// order loads order id through a fresh handler as an admin.
func (e *env) order(t *testing.T, id string) order.State {
	t.Helper()
	o, _, err := commands.New(commands.Config{Store: e.store, Payments: e.payments}).Orders.Order(context.Background(), admin, id)
	if err != nil {
		t.Fatalf("load order %s: %v", id, err)
	}
	return o
}

func (e *env) placeOrder(t *testing.T, c commands.Actor, lines ...order.Line) order.State {
	t.Helper()
	o, _, err := e.h.Orders.PlaceOrder(context.Background(), c, lines)
	if err != nil {
		t.Fatalf("place order: %v", err)
	}
	return o
}

// runPM runs a process manager over h until the test ends, keeping its
// failures in the log only.
func runPM(t *testing.T, h commands.Handlers, tick time.Duration) {
	t.Helper()
	runPMWith(t, h, tick, nil)
}

// runPMWith runs a process manager over h that keeps its failures in
// failures, until the test ends.
func runPMWith(t *testing.T, h commands.Handlers, tick time.Duration, failures commands.FailureLog) {
	t.Helper()
	startPM(t, h, tick, failures, nil)
}

// startPM runs a process manager over h with failures and view until the
// returned function, or the test's end, stops it.
func startPM(t *testing.T, h commands.Handlers, tick time.Duration, failures commands.FailureLog, view commands.ViewStore) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	pm := commands.NewProcessManager(h.Orders, tick, failures, view)
	go func() { done <- pm.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("process manager: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("process manager did not stop")
		}
	})
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the deadline passes; cond returns
// what it saw, for the failure message.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last saw: %s", within, what, saw)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readAll returns the whole global log, once it has caught up with every
// append that committed before the call.
func readAll(t *testing.T, s eventstore.Store) []eventstore.Event {
	t.Helper()
	evs, _ := readAllSince(t, s, eventstore.Start)
	return evs
}

// readAllSince returns the global log after from, once it has caught up
// with every append that committed before the call, and the position to
// continue from. On PostgreSQL the log shows a transaction only once every
// older transaction in the cluster has ended, so a read right after an
// append may not show it yet: the test appends a marker and reads until
// the marker shows, which is after everything committed before it.
// Marker events are left out of the result.
func readAllSince(t *testing.T, s eventstore.Store, from eventstore.Position) ([]eventstore.Event, eventstore.Position) {
	t.Helper()
	marker := uuid.Must(uuid.NewV7())
	if _, err := s.Append(context.Background(), "test_marker-"+marker.String(), eventstore.NoStream,
		eventstore.EventData{ID: marker, Type: "test.marker", Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatalf("append marker: %v", err)
	}
	var out []eventstore.Event
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := s.ReadAll(context.Background(), from, eventstore.MaxReadCount)
		if err != nil {
			t.Fatalf("read all: %v", err)
		}
		for _, e := range evs {
			from = e.Position
			if e.ID == marker {
				return out, from
			}
			if e.Type != "test.marker" {
				out = append(out, e)
			}
		}
		if len(evs) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the global log did not catch up with an append within 10s")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// readStream returns every event of stream, or nil when it has none.
func readStream(t *testing.T, s eventstore.Store, stream string) []eventstore.Event {
	t.Helper()
	evs, err := s.ReadStream(context.Background(), stream, eventstore.Forwards, 0, eventstore.MaxReadCount)
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	return evs
}

func types(evs []eventstore.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// appendEvent writes a domain event straight to the store, encoded as the
// commands encode it, as a crashed or foreign writer would have.
func appendEvent(t *testing.T, s eventstore.Store, stream string, expected eventstore.ExpectedVersion, at time.Time, ev domain.Event) (eventstore.AppendResult, error) {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return s.Append(context.Background(), stream, expected, eventstore.EventData{
		ID: uuid.Must(uuid.NewV7()), Type: ev.EventType(), SchemaVersion: 1, Data: b,
		Metadata: eventstore.Metadata{CorrelationID: "test", CausationID: "test", ActorID: "test", Timestamp: at},
	})
}

func mustAppend(t *testing.T, s eventstore.Store, stream string, expected eventstore.ExpectedVersion, at time.Time, ev domain.Event) eventstore.AppendResult {
	t.Helper()
	res, err := appendEvent(t, s, stream, expected, at, ev)
	if err != nil {
		t.Fatalf("append %s to %s: %v", ev.EventType(), stream, err)
	}
	return res
}

// seedUser writes a registered user straight to the store, so tests that
// need users do not pay for argon2id under -race.
func seedUser(t *testing.T, s eventstore.Store, at time.Time, roles ...string) string {
	t.Helper()
	id := uuid.NewString()
	mustAppend(t, s, user.Stream(id), eventstore.NoStream, at, user.Registered{
		UserID: id, Email: id + "@example.com", FullName: "Seeded", Roles: []string{user.RoleCustomer},
	})
	for i, r := range roles {
		mustAppend(t, s, user.Stream(id), eventstore.Exact(int64(i)), at, user.RoleGranted{UserID: id, Role: r})
	}
	return id
}

// isReason reports whether err is a domain error of code and reason.
func isReason(err error, code domain.Code, reason string) bool {
	return errors.Is(err, &domain.Error{Code: code, Reason: reason})
}

// domainErr returns err's domain error, or nil.
func domainErr(err error) *domain.Error {
	var de *domain.Error
	if errors.As(err, &de) {
		return de
	}
	return nil
}

// extraInt reads a number from a domain error's Extra.
func extraInt(t *testing.T, de *domain.Error, key string) int64 {
	t.Helper()
	switch v := de.Extra[key].(type) {
	case int64:
		return v
	case int:
		return int64(v)
	case float64:
		return int64(v)
	}
	t.Fatalf("extra %q of %v is %T %v, want a number", key, de, de.Extra[key], de.Extra[key])
	return 0
}

// decodeData decodes an event's data into v.
func decodeData(t *testing.T, e eventstore.Event, v any) {
	t.Helper()
	if err := json.Unmarshal(e.Data, v); err != nil {
		t.Fatalf("decode %s: %v", e.Type, err)
	}
}

func describe(p product.State) string {
	return fmt.Sprintf("quantity=%d reserved=%d reservations=%v version=%d", p.Quantity, p.Reserved, p.Reservations, p.Version)
}

// hookStore runs a hook before each append, to force interleavings.
type hookStore struct {
	eventstore.Store
	mu   sync.Mutex
	hook func(stream string, events []eventstore.EventData)
}

func (s *hookStore) set(hook func(stream string, events []eventstore.EventData)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = hook
}

func (s *hookStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	s.mu.Lock()
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		hook(stream, events)
	}
	return s.Store.Append(ctx, stream, expected, events...)
}
