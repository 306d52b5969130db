// Package readapi is the query side of the HTTP API (chi): the GET routes
// of users, orders and products in API.md, answered from the read models
// (projections/postgres), and of notifications, from
// the notifier's ledger (notifications/ledger); the order history alone is
// read from the order's stream, read-your-writes by nature; and the
// projections' reports and rebuild requests for admins.
//
// Every route but the public product catalogue's is signed in, through
// edge.Authenticate, and every route's errors go through edge.WriteError,
// so the binary has one authentication and one error mapping. Each read-model route reads one model; a request carrying
// X-Min-Position first waits until that model has caught up with the token
// (see fresh.go).
package readapi

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/projections/catalogquery"
	pgread "github.com/eventshop/eventshop/projections/postgres"
)

// Config holds the server's dependencies.
type Config struct {
	// Reads answers the queries.
	Reads ReadModels
	// Catalog answers the product routes, which are public; they are
	// mounted only when it is set.
	Catalog CatalogReader
	// Checkpoint returns the committed checkpoint of the projection named
	// name (projections.Checkpoint on the read models' pool), whichever
	// process runs it.
	Checkpoint func(ctx context.Context, name string) (eventstore.Position, error)
	// Log is the event log. When a read model's checkpoint is behind a
	// client's token, the log between the two is read to find the last
	// event the model needs: a token of an event the model does not
	// consume (a registration, for the orders) must not wait in vain.
	// Nil: only the checkpoint counts.
	Log LogReader
	// Logger receives what the client is not told; default discards.
	Logger *slog.Logger
	// MaxWait bounds the wait for X-Min-Position; default 2 s.
	MaxWait time.Duration
	// Poll is how often a waiting request looks at the checkpoint again;
	// default 10 ms.
	Poll time.Duration
	// Progress, when set, knows the checkpoints of the projections this
	// process runs (projections.Progress): a waiting request takes those
	// from it, woken as each batch commits, and asks Checkpoint only for
	// the others.
	Progress ProgressWatcher
	// CatalogCacheTTL is how long the product routes' answers are kept
	// and served again (see answerCache); 0 keeps none. A read with
	// X-Min-Position never uses them.
	CatalogCacheTTL time.Duration
	// Orders decides who may see an order, by the write side's rule
	// (*commands.Orders), for GET /api/orders/{id}/history. That route is
	// mounted only when Orders and Streams are both set.
	Orders OrderReader
	// Streams reads an order's stream for its history (eventstore.Store).
	Streams StreamReader
	// Projections names the projections the admin routes report on, in
	// that order, and the only ones they act on.
	Projections []string
	// Admin reports on the projections and files admins' requests
	// (projections.Admin on the read models' pool). The projections'
	// admin routes are mounted only when it is set.
	Admin ProjectionAdmin
	// Failures lists what the order process manager fails on; GET
	// /api/admin/process-manager/failures is mounted only when it is set.
	Failures FailureReader
	// Notifications is the notifier's ledger, for GET /api/notifications,
	// which is mounted only when it is set.
	Notifications NotificationReader
}

// ReadModels answers the user and order routes from the read models;
// *pgread.Store is one. Its Order and User answer pgread.ErrNotFound for
// what they do not hold.
type ReadModels interface {
	Users(ctx context.Context, page, limit int) ([]resource.User, int, error)
	User(ctx context.Context, id string) (resource.User, error)
	Orders(ctx context.Context, q pgread.OrderQuery) ([]resource.Order, int, error)
	Order(ctx context.Context, id string) (resource.Order, error)
	// OrderVisible reports whether vendorID has a product in the order.
	OrderVisible(ctx context.Context, orderID, vendorID string) (bool, error)
}

// CatalogReader answers the product routes from a catalogue read model;
// *pgread.Catalog is the one cmd/eventshop serves, and *mongoread.Store
// answers the same queries from the MongoDB product documents. Product
// answers catalogquery.ErrNotFound for a product the model does not list.
// Name and Filter are those of the projection that builds the model,
// whose checkpoint X-Min-Position waits for; a model that also has
// Refresh(ctx) error has it called after the wait (see fresh).
type CatalogReader interface {
	Products(ctx context.Context, q catalogquery.ProductQuery) (catalogquery.Page, error)
	Product(ctx context.Context, id uuid.UUID) (resource.Product, error)
	Categories(ctx context.Context) ([]catalogquery.Category, error)
	Name() string
	Filter() eventstore.Filter
}

// ProgressWatcher reports where a projection's checkpoint is when this
// process knows it (known), and a channel closed when that changes;
// *projections.Progress is one.
type ProgressWatcher interface {
	Watch(name string) (pos eventstore.Position, known bool, changed <-chan struct{})
}

// LogReader reads the global event log; eventstore.Store is one.
type LogReader interface {
	ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.Event, error)
}

// Server serves the read API.
type Server struct {
	reads      ReadModels
	catalog    CatalogReader
	checkpoint func(ctx context.Context, name string) (eventstore.Position, error)
	progress   ProgressWatcher // nil: none
	events     LogReader
	log        *slog.Logger
	maxWait    time.Duration
	poll       time.Duration
	waiters    chan struct{} // a slot per request waiting for X-Min-Position
	cache      *answerCache  // the catalogue's answers; nil: none kept

	orders        OrderReader
	streams       StreamReader
	projections   []string
	admin         ProjectionAdmin
	failures      FailureReader
	notifications NotificationReader
}

// New builds a Server. Reads and Checkpoint are required.
func New(cfg Config) *Server {
	s := &Server{reads: cfg.Reads, checkpoint: cfg.Checkpoint, events: cfg.Log,
		log: cfg.Logger, maxWait: cfg.MaxWait, poll: cfg.Poll, progress: cfg.Progress}
	s.catalog = cfg.Catalog
	s.orders, s.streams = cfg.Orders, cfg.Streams
	s.projections = slices.Clone(cfg.Projections)
	s.admin, s.failures = cfg.Admin, cfg.Failures
	s.notifications = cfg.Notifications
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.waiters = make(chan struct{}, maxWaiters)
	if cfg.CatalogCacheTTL > 0 {
		s.cache = newAnswerCache(cfg.CatalogCacheTTL)
	}
	if s.maxWait <= 0 {
		s.maxWait = 2 * time.Second
	}
	if s.poll <= 0 {
		s.poll = 10 * time.Millisecond
	}
	return s
}

// Routes mounts the read routes on r, all but the product catalogue's
// behind authenticate (edge.Authenticate, which puts the caller where
// edge.ActorFrom finds it). r should already run edge.Middleware. The
// routes share their patterns with write routes of other methods
// (POST /api/orders), so both go on one router.
func (s *Server) Routes(r chi.Router, authenticate func(http.Handler) http.Handler) {
	if s.catalog != nil {
		// The catalogue is public: no authenticate.
		var refresh func(context.Context) error
		if m, ok := s.catalog.(interface{ Refresh(context.Context) error }); ok {
			refresh = m.Refresh
		}
		products := r.With(s.fresh(s.catalog, refresh))
		if s.cache != nil {
			products = products.With(s.cache.middleware)
		}
		products.Get("/api/products", s.handleProducts)
		products.Get("/api/products/categories", s.handleCategories)
		products.Get("/api/products/{id}", s.handleProduct)
	}
	r.Group(func(r chi.Router) {
		r.Use(authenticate)
		users := r.With(s.fresh(pgread.UsersProjection{}, nil))
		users.Get("/api/users", s.handleUsers)
		users.Get("/api/users/{id}", s.handleUser)
		orders := r.With(s.fresh(pgread.OrdersProjection{}, nil))
		orders.Get("/api/orders", s.handleOrders)
		orders.Get("/api/orders/{id}", s.handleOrder)
		if s.orders != nil && s.streams != nil {
			r.Get("/api/orders/{id}/history", s.handleOrderHistory)
		}
		if s.notifications != nil {
			r.Get("/api/notifications", s.handleNotifications)
		}
		if s.admin != nil {
			admin := r.With(edge.RequireRole(user.RoleAdmin))
			admin.Get("/api/admin/projections", s.handleProjections)
			admin.Post("/api/admin/projections/{name}/rebuild", s.handleRebuild)
			admin.Get("/api/admin/projections/{name}/parked", s.handleParked)
			admin.Post("/api/admin/projections/{name}/parked/{event_id}/retry", s.handleRetryParked)
			admin.Post("/api/admin/projections/{name}/parked/{event_id}/skip", s.handleSkipParked)
		}
		if s.failures != nil {
			r.With(edge.RequireRole(user.RoleAdmin)).Get("/api/admin/process-manager/failures", s.handleProcessFailures)
		}
	})
}

// page is the list shape of API.md.
type page[T any] struct {
	Items []T `json:"items"`
	Page  int `json:"page"`
	Limit int `json:"limit"`
	Total int `json:"total"`
	// TotalCapped says Total is a lower bound: the model stopped counting
	// there (a product search or price range matching many).
	TotalCapped bool `json:"total_capped,omitempty"`
}

// writeJSON answers 200 with v. Reads may be cached by the client but
// must be revalidated (ETag), unlike command answers (no-store).
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Cache-Control", "private, no-cache")
	edge.WriteJSON(w, http.StatusOK, v)
}

// writeResource answers with one resource of version and its ETag, or 304
// when the request's If-None-Match already names that version.
func writeResource(w http.ResponseWriter, r *http.Request, version int64, v any) {
	etag := strconv.Quote(strconv.FormatInt(version, 10))
	w.Header().Set("ETag", etag)
	if noneMatch(r.Header.Get("If-None-Match"), etag) {
		w.Header().Set("Cache-Control", "private, no-cache")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeJSON(w, v)
}

// noneMatch reports whether an If-None-Match header matches etag: "*", or
// a list naming it, weakly compared (RFC 9110 §13.1.2).
func noneMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
