// Package readapi is the query side of the HTTP API (chi): the GET routes
// of users and orders in API.md, answered from the PostgreSQL read models
// (projections/postgres), never from the event store.
//
// Every route is signed in, through the write API's Authenticate, and its
// errors go through the write API's WriteError, so the binary has one
// authentication and one error mapping. Each route reads one read model;
// a request carrying X-Min-Position first waits until that model has
// caught up with the token (see fresh.go).
package readapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/eventshop/eventshop/eventstore"
	pgread "github.com/eventshop/eventshop/projections/postgres"
)

// Config holds the server's dependencies.
type Config struct {
	// Reads answers the queries.
	Reads *pgread.Store
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
	// Errors writes every error response (writeapi.Server.WriteError).
	Errors func(w http.ResponseWriter, r *http.Request, err error)
	// Logger receives what the client is not told; default discards.
	Logger *slog.Logger
	// MaxWait bounds the wait for X-Min-Position; default 2 s.
	MaxWait time.Duration
	// Poll is how often a waiting request looks at the checkpoint again;
	// default 10 ms.
	Poll time.Duration
}

// LogReader reads the global event log; eventstore.Store is one.
type LogReader interface {
	ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.Event, error)
}

// Server serves the read API.
type Server struct {
	reads      *pgread.Store
	checkpoint func(ctx context.Context, name string) (eventstore.Position, error)
	events     LogReader
	errors     func(w http.ResponseWriter, r *http.Request, err error)
	log        *slog.Logger
	maxWait    time.Duration
	poll       time.Duration
}

// New builds a Server. Reads, Checkpoint and Errors are required.
func New(cfg Config) *Server {
	s := &Server{reads: cfg.Reads, checkpoint: cfg.Checkpoint, events: cfg.Log,
		errors: cfg.Errors, log: cfg.Logger, maxWait: cfg.MaxWait, poll: cfg.Poll}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxWait <= 0 {
		s.maxWait = 2 * time.Second
	}
	if s.poll <= 0 {
		s.poll = 10 * time.Millisecond
	}
	return s
}

// Routes mounts the read routes on r, behind authenticate: the write API's
// Authenticate, which puts the caller where writeapi.ActorFrom finds it. r should already run the write API's Middleware. The
// routes share their patterns with write routes of other methods
// (POST /api/orders), so both go on one router.
func (s *Server) Routes(r chi.Router, authenticate func(http.Handler) http.Handler) {
	r.Group(func(r chi.Router) {
		r.Use(authenticate)
		users := r.With(s.fresh(pgread.UsersProjection{}))
		users.Get("/api/users", s.handleUsers)
		users.Get("/api/users/{id}", s.handleUser)
		orders := r.With(s.fresh(pgread.OrdersProjection{}))
		orders.Get("/api/orders", s.handleOrders)
		orders.Get("/api/orders/{id}", s.handleOrder)
	})
}

// page is the list shape of API.md.
type page[T any] struct {
	Items []T `json:"items"`
	Page  int `json:"page"`
	Limit int `json:"limit"`
	Total int `json:"total"`
}

// writeJSON answers 200 with v. Reads may be cached by the client but
// must be revalidated (ETag), unlike command answers (no-store).
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "private, no-cache")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
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
