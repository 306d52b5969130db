package readapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/edge"
)

// maxWaiters bounds the requests waiting for X-Min-Position at once.
const maxWaiters = 256

// minPositionHeader carries the token a read must be as new as.
const minPositionHeader = "X-Min-Position"

// maxScan bounds the events of the log one request reads to tell whether
// its read model needs any of them; beyond it only the checkpoint counts.
const maxScan = 10_000

// scanPage is how many events one read of the log asks for.
const scanPage = 1_000

// model is the projection behind a read model: a projections.Projection
// or a projections.Sink.
type model interface {
	Name() string
	Filter() eventstore.Filter
}

// fresh is read-your-writes for the routes reading p's model: a request
// with X-Min-Position waits, up to MaxWait, until the model holds every
// event up to that token; if it does not by then, the request is served
// anyway with X-Stale: true. A token that does not parse is a 400.
//
// refresh, when not nil, runs after the wait: a model whose readers cache
// where it lives (the catalogue's collection, which a rebuild moves before
// it moves the checkpoint) reads that again, so the answer comes from the
// model the checkpoint speaks for.
func (s *Server) fresh(p model, refresh func(context.Context) error) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw := strings.TrimSpace(r.Header.Get(minPositionHeader))
			if raw == "" {
				next.ServeHTTP(w, r)
				return
			}
			token, err := eventstore.ParsePosition(raw)
			if err != nil {
				edge.WriteError(w, r, edge.BadRequest("X-Min-Position must be an X-Event-Position this API gave out"))
				return
			}
			ok := s.await(r.Context(), p, token)
			if refresh != nil {
				if err := refresh(r.Context()); err != nil {
					s.log.WarnContext(r.Context(), "refresh the read model's location for X-Min-Position", "projection", p.Name(), "err", err)
					ok = false
				}
			}
			if !ok {
				w.Header().Set("X-Stale", "true")
			}
			next.ServeHTTP(w, r)
		})
	}
}

// await waits until p's model holds every event up to token, and reports
// whether it got there within MaxWait (and before ctx ended).
//
// A checkpoint only moves on the events its projection consumes, so
// "checkpoint ≥ token" alone would never hold for a token of an event the
// model ignores. Hence await reads the log once from the checkpoint up to
// the token and waits for the last event in between that p consumes (or
// for nothing, when there is none). A reader of the log that has been
// handed an event never sees an earlier one commit later (eventstore's
// ReadAll promise), so once the scan reaches the token it is final.
//
// Where the process runs p's projection itself (Config.Progress), the
// checkpoint comes from memory and each commit wakes the waiting requests;
// elsewhere each request reads it from the database every Poll.
//
// At most maxWaiters requests wait at once; beyond that a request is not
// made to wait (it answers stale), so tokens from the future cannot tie
// the database up.
func (s *Server) await(ctx context.Context, p model, token eventstore.Position) bool {
	select {
	case s.waiters <- struct{}{}:
		defer func() { <-s.waiters }()
	default:
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, s.maxWait)
	defer cancel()
	tick := time.NewTicker(s.poll)
	defer tick.Stop()
	var (
		need    = token // the position the checkpoint must reach
		scanned bool    // the scan began
		sc      scan
		warned  bool
	)
	for {
		cp, changed, err := s.checkpointOf(ctx, p.Name())
		switch {
		case err == nil && !cp.Less(need):
			return true
		case err == nil && s.events != nil && !sc.done:
			if !scanned {
				sc, scanned = scan{from: cp, filter: p.Filter(), token: token}, true
			}
			if serr := sc.advance(ctx, s.events); serr != nil && ctx.Err() == nil && !warned {
				s.log.WarnContext(ctx, "read the event log for X-Min-Position", "projection", p.Name(), "err", serr)
				warned = true
			}
			if sc.done && sc.found {
				need = sc.need
			} else if sc.done {
				return true // nothing the model consumes lies between its checkpoint and the token
			}
			if !cp.Less(need) {
				return true
			}
		case err != nil && ctx.Err() == nil && !warned:
			s.log.WarnContext(ctx, "read checkpoint for X-Min-Position", "projection", p.Name(), "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		case <-changed:
		}
	}
}

// checkpointOf is where name's checkpoint is: from the projection's
// runner in this process, when it is the active instance (see
// projections.Progress), with a channel closed when it moves on; from the
// database otherwise (the caller polls).
func (s *Server) checkpointOf(ctx context.Context, name string) (eventstore.Position, <-chan struct{}, error) {
	var changed <-chan struct{}
	if s.progress != nil {
		pos, known, ch := s.progress.Watch(name)
		if known {
			return pos, ch, nil
		}
		changed = ch // woken should this process become the active instance
	}
	cp, err := s.checkpoint(ctx, name)
	return cp, changed, err
}

// throughReader is a LogReader that can serve a read needing the log only
// up to a position from memory (postgres.Store.ReadAllThrough).
type throughReader interface {
	ReadAllThrough(ctx context.Context, from eventstore.Position, count int, through eventstore.Position) ([]eventstore.Event, error)
}

// scan reads the log after from up to token, remembering the last event
// filter matches. It goes on from where it stopped on each advance, as the
// log fills up to the token.
type scan struct {
	from   eventstore.Position
	filter eventstore.Filter
	token  eventstore.Position
	read   int

	done  bool                // reached the token, or gave up (then found is false and need unset)
	found bool                // need is set
	need  eventstore.Position // the last matching event at or before token
}

// advance reads on until the token, the end of the log as far as it can be
// read now, or maxScan events. Giving up at maxScan sets done with the
// token itself as what is needed, so only the checkpoint counts.
func (sc *scan) advance(ctx context.Context, log LogReader) error {
	for !sc.done {
		if sc.read >= maxScan {
			sc.done, sc.found, sc.need = true, true, sc.token
			return nil
		}
		var (
			evs []eventstore.Event
			err error
		)
		if t, ok := log.(throughReader); ok {
			evs, err = t.ReadAllThrough(ctx, sc.from, scanPage, sc.token)
		} else {
			evs, err = log.ReadAll(ctx, sc.from, scanPage)
		}
		if err != nil {
			return err
		}
		for i := range evs {
			e := &evs[i]
			if sc.token.Less(e.Position) {
				sc.done = true
				return nil
			}
			if sc.filter.Match(e) {
				sc.found, sc.need = true, e.Position
			}
			sc.from = e.Position
			if e.Position == sc.token {
				sc.done = true
				return nil
			}
		}
		sc.read += len(evs)
		if len(evs) < scanPage {
			return nil // the token is not readable yet
		}
	}
	return nil
}
