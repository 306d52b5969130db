package readapi

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/projections"
)

// parkedEvent is one entry of a projection's parked list in the admin
// routes' answers; members with nothing to say are null.
type parkedEvent struct {
	EventID  string `json:"event_id"`
	Stream   string `json:"stream"`
	Version  int64  `json:"version"`
	Type     string `json:"type"`
	Position string `json:"position"`
	// Status is parked, halted or skipped.
	Status string `json:"status"`
	// Error is the event's last failure; null for one that only waits
	// behind another of its stream.
	Error             *string    `json:"error"`
	Attempts          int        `json:"attempts"`
	FirstSeen         time.Time  `json:"first_seen"`
	ParkedAt          time.Time  `json:"parked_at"`
	Action            *string    `json:"action"`
	ActionBy          *string    `json:"action_by"`
	ActionRequestedAt *time.Time `json:"action_requested_at"`
	SkippedBy         *string    `json:"skipped_by"`
	SkipReason        *string    `json:"skip_reason"`
	SkippedAt         *time.Time `json:"skipped_at"`
}

func newParkedEvent(p projections.ParkedEvent) parkedEvent {
	return parkedEvent{
		EventID: p.EventID.String(), Stream: p.StreamID, Version: p.Version, Type: p.Type, Position: p.Position.String(),
		Status: p.Status, Error: nonEmpty(p.Error), Attempts: p.Attempts, FirstSeen: p.FirstSeen.UTC(),
		ParkedAt: p.ParkedAt.UTC(), Action: nonEmpty(p.Action), ActionBy: nonEmpty(p.ActionBy),
		ActionRequestedAt: nonZero(p.ActionRequestedAt), SkippedBy: nonEmpty(p.SkippedBy),
		SkipReason: nonEmpty(p.SkipReason), SkippedAt: nonZero(p.SkippedAt),
	}
}

// parkedStatuses are what ?status of the parked list may be.
var parkedStatuses = []string{projections.ParkedStatusParked, projections.ParkedStatusHalted, projections.ParkedStatusSkipped}

// projectionName is the {name} of the path when it is a configured
// projection; otherwise it answers 404 and returns "".
func (s *Server) projectionName(w http.ResponseWriter, r *http.Request) string {
	name := chi.URLParam(r, "name")
	if !slices.Contains(s.projections, name) {
		edge.WriteError(w, r, domain.NotFound("projection", name))
		return ""
	}
	return name
}

// handleParked is GET /api/admin/projections/{name}/parked?page&limit&status:
// the projection's parked list, by stream and version (the order a retry
// applies them in), read from the database whichever process runs it.
func (s *Server) handleParked(w http.ResponseWriter, r *http.Request) {
	name := s.projectionName(w, r)
	if name == "" {
		return
	}
	var bad domain.Fields
	q := r.URL.Query()
	pg, limit := pagination(q, &bad)
	status := param(q, "status", &bad)
	if status != "" && !slices.Contains(parkedStatuses, status) {
		bad.Add("status", "must be one of parked, halted or skipped, not %q", status)
	}
	if err := bad.Err(); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	list, total, err := s.admin.Parked(r.Context(), name, status, pg, limit)
	if err != nil {
		edge.WriteError(w, r, edge.Unavailable(err))
		return
	}
	items := make([]parkedEvent, len(list))
	for i, p := range list {
		items[i] = newParkedEvent(p)
	}
	writeJSON(w, page[parkedEvent]{Items: items, Page: pg, Limit: limit, Total: total})
}

// handleRetryParked is POST /api/admin/projections/{name}/parked/{event_id}/retry:
// it files, for the projection's active runner, a retry of the parked
// event's stream (its parked events applied again, in order) and answers
// 202 with the entry, its action pending. Whether the retry succeeded shows
// in the list afterwards: the entries are gone, or the first holds the new
// error.
func (s *Server) handleRetryParked(w http.ResponseWriter, r *http.Request) {
	name, id, ok := s.parkedTarget(w, r)
	if !ok {
		return
	}
	a, _ := edge.ActorFrom(r.Context())
	p, err := s.admin.RequestRetry(r.Context(), name, id, a.ID)
	s.answerAction(w, r, name, id, p, err)
}

// handleSkipParked is POST /api/admin/projections/{name}/parked/{event_id}/skip
// with {reason}: it files a skip of the parked event, which must be the
// first parked event of its stream (409 otherwise, naming that one). The
// runner records it as skipped by the caller, for reason, and then applies
// the stream's later parked events. 202 with the entry.
func (s *Server) handleSkipParked(w http.ResponseWriter, r *http.Request) {
	name, id, ok := s.parkedTarget(w, r)
	if !ok {
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if err := edge.Decode(r, &body); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	a, _ := edge.ActorFrom(r.Context())
	p, err := s.admin.RequestSkip(r.Context(), name, id, a.ID, body.Reason)
	s.answerAction(w, r, name, id, p, err)
}

// parkedTarget reads the projection and event of an action's path: 404
// for a projection that is not configured or an id that is no UUID.
func (s *Server) parkedTarget(w http.ResponseWriter, r *http.Request) (string, uuid.UUID, bool) {
	name := s.projectionName(w, r)
	if name == "" {
		return "", uuid.Nil, false
	}
	raw := chi.URLParam(r, "event_id")
	id, ok := edge.CanonicalID(raw)
	if !ok {
		edge.WriteError(w, r, domain.NotFound("parked_event", raw))
		return "", uuid.Nil, false
	}
	return name, uuid.MustParse(id), true
}

// answerAction answers a filed action: 202 with the entry, or the
// request's error.
func (s *Server) answerAction(w http.ResponseWriter, r *http.Request, name string, id uuid.UUID, p projections.ParkedEvent, err error) {
	var nf *projections.NotFirstError
	switch {
	case err == nil:
		writeAccepted(w, "/api/admin/projections/"+name+"/parked", newParkedEvent(p))
	case errors.Is(err, projections.ErrNotParked):
		edge.WriteError(w, r, domain.NotFound("parked_event", id.String()))
	case errors.As(err, &nf):
		c := domain.Conflict("not_first_in_stream", "%s", nf.Error())
		c.Extra = map[string]any{"stream": nf.Stream, "first_event_id": nf.First.String()}
		edge.WriteError(w, r, c)
	case errors.Is(err, projections.ErrInvalidReason):
		var f domain.Fields
		f.Add("reason", "is required: 1 to %d characters without control characters", projections.MaxSkipReason)
		edge.WriteError(w, r, f.Err())
	default:
		edge.WriteError(w, r, edge.Unavailable(err))
	}
}
