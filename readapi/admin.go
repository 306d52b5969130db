package readapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/projections"
)

// ProjectionAdmin is what the projections' admin routes need:
// projections.Admin on the read models' pool, in whichever process the
// runners are.
type ProjectionAdmin interface {
	Reports(ctx context.Context, names []string) ([]projections.Report, error)
	RequestRebuild(ctx context.Context, name string) error
	Parked(ctx context.Context, name, status string, page, limit int) ([]projections.ParkedEvent, int, error)
	RequestRetry(ctx context.Context, name string, id uuid.UUID, by string) (projections.ParkedEvent, error)
	RequestSkip(ctx context.Context, name string, id uuid.UUID, by, reason string) (projections.ParkedEvent, error)
}

// projectionReport is one projection in the admin routes' answers: the
// members of API.md (name, position, lag, status, last_error) and more of
// what its runner reported. A member with nothing to say is null: lag
// before the runner first measured it, last_error while none happened,
// rebuild when none is pending or failed, and the times that never were.
type projectionReport struct {
	Name string `json:"name"`
	// Position is the checkpoint as an X-Event-Position token.
	Position string `json:"position"`
	// Lag is how many events the projection is behind: exact when
	// lag_exact, else a lower bound.
	Lag        *int64  `json:"lag"`
	LagExact   bool    `json:"lag_exact"`
	LagSeconds float64 `json:"lag_seconds"`
	// Status is a projections.State* constant; "stopped" when no runner
	// reported lately.
	Status    string  `json:"status"`
	LastError *string `json:"last_error"`
	// Policy is what the projection does with an event that keeps
	// failing: park or halt. Parked counts its parked list's events
	// (failed, or waiting behind one that did; skipped ones not).
	Policy string `json:"policy"`
	Parked int64  `json:"parked"`
	// Rebuild is "requested", "running" or "failed" (the last one was
	// given up; rebuild_error says why); RebuildApplied and RebuildParked
	// count what the running, or else the last, rebuild applied and
	// parked.
	Rebuild        *string    `json:"rebuild"`
	RebuildError   *string    `json:"rebuild_error"`
	RebuildApplied int64      `json:"rebuild_applied"`
	RebuildParked  int64      `json:"rebuild_parked"`
	RebuiltAt      *time.Time `json:"rebuilt_at"`
	ReportedAt     *time.Time `json:"reported_at"`
}

func newProjectionReport(r projections.Report) projectionReport {
	out := projectionReport{
		Name: r.Name, Position: r.Position.String(), LagExact: r.LagExact, LagSeconds: r.LagTime.Seconds(),
		Status: r.State, LastError: nonEmpty(r.LastError), Policy: r.Policy, Parked: r.Parked,
		Rebuild: nonEmpty(r.Rebuild), RebuildError: nonEmpty(r.RebuildError), RebuildApplied: r.RebuildApplied,
		RebuildParked: r.RebuildParked, RebuiltAt: nonZero(r.RebuiltAt), ReportedAt: nonZero(r.ReportedAt),
	}
	if r.LagEvents >= 0 {
		out.Lag = &r.LagEvents
	}
	return out
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nonZero(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// handleProjections is GET /api/admin/projections: the report of every
// configured projection, in the configured order, read from the database
// so that it holds whichever process runs them.
func (s *Server) handleProjections(w http.ResponseWriter, r *http.Request) {
	reps, err := s.admin.Reports(r.Context(), s.projections)
	if err != nil {
		edge.WriteError(w, r, edge.Unavailable(err))
		return
	}
	out := make([]projectionReport, len(reps))
	for i, rep := range reps {
		out[i] = newProjectionReport(rep)
	}
	writeJSON(w, out)
}

// handleRebuild is POST /api/admin/projections/{name}/rebuild: it files a
// rebuild for the projection's active runner to pick up and answers 202
// with the projection's report, which shows the rebuild as requested (or
// already running). A name that is not a configured projection is a 404.
// Filing again while a rebuild is pending changes nothing, so a client may
// retry a 503.
func (s *Server) handleRebuild(w http.ResponseWriter, r *http.Request) {
	name := s.projectionName(w, r)
	if name == "" {
		return
	}
	if err := s.admin.RequestRebuild(r.Context(), name); err != nil {
		edge.WriteError(w, r, edge.Unavailable(err))
		return
	}
	reps, err := s.admin.Reports(r.Context(), []string{name})
	if err == nil && len(reps) != 1 {
		err = fmt.Errorf("projection reports: %d reports for the one name %s", len(reps), name)
	}
	if err != nil {
		edge.WriteError(w, r, edge.Unavailable(err))
		return
	}
	writeAccepted(w, "/api/admin/projections", newProjectionReport(reps[0]))
}

// writeAccepted answers 202 with v: a request filed for a runner, which
// location shows the progress of.
func writeAccepted(w http.ResponseWriter, location string, v any) {
	w.Header().Set("Location", location)
	edge.WriteJSON(w, http.StatusAccepted, v)
}
