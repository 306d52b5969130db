package writeapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/edge/problem"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/internal/services/auth"
)

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		FullName string `json:"full_name"`
	}
	if err := edge.Decode(r, &body); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	ctx, cancel := command(r)
	defer cancel()
	u, res, err := s.users.RegisterUser(ctx, commands.RegisterUser{Email: body.Email, Password: body.Password, FullName: body.FullName})
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/users/"+u.ID)
	writeResult(w, http.StatusCreated, res, resource.FromUser(u))
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := edge.Decode(r, &body); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	account := strings.ToLower(strings.TrimSpace(body.Email))
	ip := auth.ClientIP(r, s.trustProxy)
	// The attempt is counted before the password is checked, atomically,
	// so concurrent guesses cannot slip under the limit together.
	retry, err := s.logins.Attempt(r.Context(), account, ip)
	if err != nil {
		edge.WriteError(w, r, edge.Unavailable(err))
		return
	}
	if retry > 0 {
		s.tooManyLogins(w, retry)
		return
	}
	u, err := s.users.Authenticate(r.Context(), body.Email, body.Password)
	if err != nil {
		if !errors.Is(err, domain.ErrBadCredentials) {
			// The password was never checked: this attempt does not count.
			if uerr := s.logins.Unchecked(context.WithoutCancel(r.Context()), account, ip); uerr != nil {
				s.log.WarnContext(r.Context(), "take back sign-in attempt", "err", uerr)
			}
			err = edge.Unavailable(err)
		}
		edge.WriteError(w, r, err)
		return
	}
	if err := s.logins.Succeeded(r.Context(), account, ip); err != nil {
		s.log.WarnContext(r.Context(), "reset sign-in attempts", "err", err)
	}
	tokens, err := s.auth.Issue(r.Context(), u.ID, u.Roles)
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	edge.WriteJSON(w, http.StatusOK, tokens)
}

func (s *Server) tooManyLogins(w http.ResponseWriter, retry time.Duration) {
	secs := int(retry.Seconds() + 0.999)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	problem.Write(w, problem.New(http.StatusTooManyRequests, "too many failed sign-ins; try again later"))
}

func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := edge.Decode(r, &body); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	tokens, err := s.auth.Refresh(r.Context(), body.RefreshToken, func(ctx context.Context, id string) ([]string, error) {
		u, _, err := s.users.User(ctx, id)
		if err != nil {
			return nil, auth.ErrInvalidToken
		}
		return u.Roles, nil
	})
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	edge.WriteJSON(w, http.StatusOK, tokens)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := edge.Decode(r, &body); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	a, _ := edge.ActorFrom(r.Context())
	if err := s.auth.Logout(r.Context(), body.RefreshToken, a.Claims); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	u, res, err := s.users.User(r.Context(), actor(r).ID)
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	writeResult(w, http.StatusOK, res, resource.FromUser(u))
}

func (s *Server) handleGrantRole(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Role string `json:"role"`
	}
	if err := edge.Decode(r, &body); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	id, err := edge.PathID(r, "user")
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	ctx, cancel := command(r)
	defer cancel()
	u, res, err := s.users.GrantRole(ctx, actor(r), id, body.Role)
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	writeResult(w, http.StatusOK, res, resource.FromUser(u))
}

func (s *Server) handleRevokeRole(w http.ResponseWriter, r *http.Request) {
	id, err := edge.PathID(r, "user")
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	ctx, cancel := command(r)
	defer cancel()
	u, res, err := s.users.RevokeRole(ctx, actor(r), id, chi.URLParam(r, "role"))
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	writeResult(w, http.StatusOK, res, resource.FromUser(u))
}
