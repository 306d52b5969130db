// Package writeapi is the command side of the HTTP API (chi): every POST,
// PATCH and DELETE route of API.md, plus sign-in. Each handler decodes
// strictly, runs one command, and answers with the resulting state,
// X-Event-Position and, for single resources, ETag. It stands on the HTTP
// edge (internal/edge): authentication, role checks, decoding and the one
// mapping of every error to RFC 9457 problem+json live there.
package writeapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/edge/idempotency"
	"github.com/eventshop/eventshop/internal/services/auth"
	"github.com/eventshop/eventshop/internal/services/payment"
)

// Users runs the account commands of the auth and role routes;
// *commands.Users is one.
type Users interface {
	RegisterUser(ctx context.Context, c commands.RegisterUser) (user.State, commands.Result, error)
	Authenticate(ctx context.Context, email, password string) (user.State, error)
	User(ctx context.Context, id string) (user.State, commands.Result, error)
	GrantRole(ctx context.Context, actor commands.Actor, userID, role string) (user.State, commands.Result, error)
	RevokeRole(ctx context.Context, actor commands.Actor, userID, role string) (user.State, commands.Result, error)
}

// Catalog runs the commands of the product routes; *commands.Catalog is
// one.
type Catalog interface {
	CreateProduct(ctx context.Context, actor commands.Actor, c commands.CreateProduct) (product.State, commands.Result, error)
	UpdateProduct(ctx context.Context, actor commands.Actor, id string, ifMatch int64, c product.Update) (product.State, commands.Result, error)
	DiscontinueProduct(ctx context.Context, actor commands.Actor, id string, ifMatch int64) (product.State, commands.Result, error)
	AdjustInventory(ctx context.Context, actor commands.Actor, id string, ifMatch int64, c product.AdjustInventory) (product.State, commands.Result, error)
}

// Orders runs the commands of the order routes; *commands.Orders is one.
type Orders interface {
	PlaceOrderOnce(ctx context.Context, actor commands.Actor, key string, lines []order.Line) (order.State, commands.Result, error)
	PayOrderOnce(ctx context.Context, actor commands.Actor, key, id string, ifMatch int64, card payment.Card) (order.State, commands.Result, error)
	CompleteOrder(ctx context.Context, actor commands.Actor, id string, ifMatch int64) (order.State, commands.Result, error)
	CancelOrder(ctx context.Context, actor commands.Actor, id string, ifMatch int64, reason string) (order.State, commands.Result, error)
}

// Config holds the server's dependencies.
type Config struct {
	// Authenticate is the middleware of the signed-in routes
	// (edge.Authenticate).
	Authenticate func(http.Handler) http.Handler
	Users        Users
	Catalog      Catalog
	Orders       Orders
	Auth         *auth.Service
	Logins       *auth.LoginLimiter
	Idempotency  *idempotency.Store
	Log          *slog.Logger
	// TrustProxy takes the client's address, for login throttling, from
	// the last X-Forwarded-For entry (the one a trusted proxy in front
	// appended) instead of the connection's remote address; see
	// auth.ClientIP.
	TrustProxy bool
}

// Server serves the write API.
type Server struct {
	authenticate func(http.Handler) http.Handler
	users        Users
	catalog      Catalog
	orders       Orders
	auth         *auth.Service
	logins       *auth.LoginLimiter
	idem         *idempotency.Store
	log          *slog.Logger
	trustProxy   bool
}

// New builds a Server.
func New(cfg Config) *Server {
	s := &Server{authenticate: cfg.Authenticate, users: cfg.Users, catalog: cfg.Catalog, orders: cfg.Orders, auth: cfg.Auth, logins: cfg.Logins, idem: cfg.Idempotency, log: cfg.Log, trustProxy: cfg.TrustProxy}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Routes mounts every route of the write API on r. r should already run
// edge.Middleware (correlation ids, body limit, panics).
func (s *Server) Routes(r chi.Router) {
	for _, svc := range []string{"auth", "products", "orders", "notifications"} {
		r.Get("/api/"+svc+"/health", func(w http.ResponseWriter, r *http.Request) {
			edge.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		})
	}
	r.Post("/api/auth/register", s.handleRegister)
	r.Post("/api/auth/login", s.handleLogin)
	r.Post("/api/auth/refresh", s.handleRefresh)

	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Post("/api/auth/logout", s.handleLogout)
		r.Get("/api/auth/me", s.handleMe)

		admin := r.With(edge.RequireRole(user.RoleAdmin))
		admin.Post("/api/users/{id}/roles", s.handleGrantRole)
		admin.Delete("/api/users/{id}/roles/{role}", s.handleRevokeRole)

		r.With(edge.RequireRole(user.RoleVendor, user.RoleAdmin)).Post("/api/products", s.handleCreateProduct)
		r.Patch("/api/products/{id}", s.handleUpdateProduct)
		r.Delete("/api/products/{id}", s.handleDiscontinueProduct)
		r.Post("/api/products/{id}/inventory", s.handleAdjustInventory)

		// Roles are checked before the idempotency key is looked at, so a
		// refusal is never stored under the key and replayed.
		idem := s.idem.Middleware(func(r *http.Request) string { return actor(r).ID })
		r.With(edge.RequireRole(user.RoleCustomer, user.RoleAdmin), idem).Post("/api/orders", s.handlePlaceOrder)
		r.With(idem).Post("/api/orders/{id}/pay", s.handlePayOrder)
		admin.Post("/api/orders/{id}/complete", s.handleCompleteOrder)
		r.Post("/api/orders/{id}/cancel", s.handleCancelOrder)
	})
}

// command gives a command the request's context, detached from the
// client's connection: once a command starts writing it finishes, even if
// the client goes away, so a saga never stops half-way on a disconnect.
func command(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
}
