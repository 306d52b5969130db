package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
	"github.com/eventshop/eventshop/notifications/templates"
	"github.com/eventshop/eventshop/projections"
	"github.com/eventshop/eventshop/projections/postgres"
	"github.com/eventshop/eventshop/published"
)

// A reader is one consumer of the event log, applying the events into its
// real target. It reports each event it refuses with refuse; another reader
// of the system is one more entry in readers.
type reader struct {
	name string
	read func(ctx context.Context, p *pass, refuse func(*eventstore.Event, error))
}

// readers are every reader of the log, in the order they read: the
// readers of published messages come after the Kafka reader, which fills
// pass.published.
var readers = []reader{
	{"PostgreSQL read model users.v1", projectionReader(postgres.UsersProjection{})},
	{"PostgreSQL read model orders.v1", projectionReader(postgres.OrdersProjection{})},
	{"PostgreSQL catalogue products.v1", projectionReader(postgres.ProductsProjection{})},
	{"MongoDB catalogue catalog.v1 (FerretDB)", catalogReader},
	{"Kafka publisher and consumer (published.Decode)", kafkaReader},
	{"published contract (docs/asyncapi.yaml)", contractReader},
	{"notifier templates", templatesReader},
	{"order process manager (decode)", processManagerReader},
	{"write side loading its own aggregates", writeSideReader},
	{"product snapshots (write side)", snapshotReader},
}

// pass is one reading of a run's events by every reader.
type pass struct {
	t   *testing.T
	e   *env
	log []eventstore.Event
	// published is what the Kafka reader read back from the broker and
	// decoded, by event id.
	published map[uuid.UUID]message
}

// message is one published event as a consumer reads it.
type message struct {
	env   published.Envelope
	value []byte
}

// matching returns the events of the pass that f selects.
func (p *pass) matching(f eventstore.Filter) []eventstore.Event {
	var out []eventstore.Event
	for i := range p.log {
		if f.Match(&p.log[i]) {
			out = append(out, p.log[i])
		}
	}
	return out
}

// applyAll applies events with apply, all in one call first, as a runner
// catching up would. When that fails it applies each half the same way,
// down to single events, to find each event apply refuses. After a
// refusal the later events of the same stream are left out: a runner
// would be stuck there, and they could not apply in order anyway.
func applyAll(events []eventstore.Event, apply func([]eventstore.Event) error, refuse func(*eventstore.Event, error)) {
	stuck := map[string]bool{}
	var halve func(events []eventstore.Event)
	halve = func(events []eventstore.Event) {
		events = slices.DeleteFunc(slices.Clone(events), func(e eventstore.Event) bool { return stuck[e.StreamID] })
		if len(events) == 0 {
			return
		}
		err := apply(events)
		switch {
		case err == nil:
		case len(events) == 1:
			refuse(&events[0], err)
			stuck[events[0].StreamID] = true
		default:
			halve(events[:len(events)/2])
			halve(events[len(events)/2:])
		}
	}
	halve(events)
}

// projectionReader applies events to a PostgreSQL read model as its runner
// does: in a transaction, with the projection's schema as the search_path.
// newEnv has run its Setup.
func projectionReader(pr projections.Projection) func(context.Context, *pass, func(*eventstore.Event, error)) {
	return func(ctx context.Context, p *pass, refuse func(*eventstore.Event, error)) {
		applyAll(p.matching(pr.Filter()), func(batch []eventstore.Event) error {
			return pgx.BeginFunc(ctx, p.e.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", pgx.Identifier{pr.Schema()}.Sanitize()); err != nil {
					return err
				}
				return pr.Apply(ctx, tx, batch)
			})
		}, refuse)
	}
}

func catalogReader(ctx context.Context, p *pass, refuse func(*eventstore.Event, error)) {
	applyAll(p.matching(p.e.catalog.Filter()), func(batch []eventstore.Event) error {
		return p.e.catalog.Apply(ctx, batch)
	}, refuse)
}

// kafkaReader publishes the events through the Publisher, reads the topics
// back and decodes every message as a consumer does. An event the
// Publisher publishes that is not on its topic afterwards is refused too.
func kafkaReader(ctx context.Context, p *pass, refuse func(*eventstore.Event, error)) {
	pub := p.e.publisher
	refused := map[uuid.UUID]bool{}
	applyAll(p.matching(pub.Filter()), func(batch []eventstore.Event) error { return pub.Apply(ctx, batch) },
		func(e *eventstore.Event, err error) { refused[e.ID] = true; refuse(e, err) })

	byID := map[uuid.UUID]*eventstore.Event{}
	for i := range p.log {
		byID[p.log[i].ID] = &p.log[i]
	}
	p.published = map[uuid.UUID]message{}
	for _, topic := range published.Topics() {
		for _, rec := range kafkatest.ReadAll(p.t, p.e.brokers, topic) {
			// The id is read on its own first, so that a value Decode
			// refuses is still pinned to its event.
			var head struct{ ID uuid.UUID }
			_ = json.Unmarshal(rec.Value, &head)
			e, ours := byID[head.ID]
			if !ours {
				continue // an earlier run's, or not an envelope at all
			}
			env, err := published.Decode(rec.Value)
			if err != nil {
				refuse(e, fmt.Errorf("%s offset %d/%d: %w", topic, rec.Partition, rec.Offset, err))
				continue
			}
			p.published[e.ID] = message{env: env, value: rec.Value}
		}
	}
	for i := range p.log {
		e := &p.log[i]
		_, _, publishes := published.Destination(e.StreamID, e.Type)
		if _, ok := p.published[e.ID]; !ok && publishes && !refused[e.ID] {
			refuse(e, errors.New("the Publisher took it, but it is not on its topic"))
		}
	}
}

// eachPublished calls read with every published message, in log order.
func (p *pass) eachPublished(refuse func(*eventstore.Event, error), read func(message) error) {
	for i := range p.log {
		if m, ok := p.published[p.log[i].ID]; ok {
			if err := read(m); err != nil {
				refuse(&p.log[i], err)
			}
		}
	}
}

func contractReader(_ context.Context, p *pass, refuse func(*eventstore.Event, error)) {
	p.eachPublished(refuse, p.e.contract.check)
}

// templatesReader renders every published event as the notifier does;
// the types that get no mail render nothing, which is fine.
func templatesReader(_ context.Context, p *pass, refuse func(*eventstore.Event, error)) {
	p.eachPublished(refuse, func(m message) error {
		_, _, err := p.e.mail.Render(m.env, templates.Recipient{Email: "customer@example.com"})
		return err
	})
}

// processManagerEvents are the events the order process manager follows
// (commands.pmFilter).
var processManagerEvents = eventstore.Filter{EventTypePrefixes: []string{
	product.Reserved{}.EventType(), product.Released{}.EventType(), product.Deducted{}.EventType(), "order."}}

// processManagerReader decodes the events the process manager follows as
// it does, with the write side's registry.
func processManagerReader(_ context.Context, p *pass, refuse func(*eventstore.Event, error)) {
	registry := commands.Registry()
	for _, e := range p.matching(processManagerEvents) {
		if _, err := registry.Decode(e.Type, e.SchemaVersion, e.Data); err != nil {
			refuse(&e, err)
		}
	}
}

// writeSideReader loads every user, product and order of the run back
// through a handler with an empty cache, so that it folds each stream from
// the store, and decodes the events of the other streams (email and SKU
// claims, the set of admins) with the write side's registry. A stream that
// does not load is pinned on its first event the registry refuses, or else
// on its last.
func writeSideReader(ctx context.Context, p *pass, refuse func(*eventstore.Event, error)) {
	h := p.e.handler()
	registry := commands.Registry()
	admin := commands.Actor{ID: p.e.base.admin.ID, Roles: []string{user.RoleAdmin}}
	var streams []string
	events := map[string][]*eventstore.Event{}
	for i := range p.log {
		e := &p.log[i]
		if events[e.StreamID] == nil {
			streams = append(streams, e.StreamID)
		}
		events[e.StreamID] = append(events[e.StreamID], e)
	}
	for _, stream := range streams {
		var err error
		switch {
		case strings.HasPrefix(stream, user.StreamPrefix):
			_, _, err = h.Users.User(ctx, strings.TrimPrefix(stream, user.StreamPrefix))
		case strings.HasPrefix(stream, product.StreamPrefix):
			_, _, err = h.Catalog.Product(ctx, strings.TrimPrefix(stream, product.StreamPrefix))
		case strings.HasPrefix(stream, order.StreamPrefix):
			_, _, err = h.Orders.Order(ctx, admin, strings.TrimPrefix(stream, order.StreamPrefix))
		default:
			for _, e := range events[stream] {
				if _, err := registry.Decode(e.Type, e.SchemaVersion, e.Data); err != nil {
					refuse(e, err)
				}
			}
			continue
		}
		// A fenced id (an abandoned registration, listing or placement)
		// is not found, and rightly so.
		if err == nil || errors.Is(err, &domain.Error{Code: domain.CodeNotFound}) {
			continue
		}
		culprit := events[stream][len(events[stream])-1]
		for _, e := range events[stream] {
			if _, derr := registry.Decode(e.Type, e.SchemaVersion, e.Data); derr != nil {
				culprit = e
				break
			}
		}
		refuse(culprit, fmt.Errorf("load %s: %w", stream, err))
	}
}

// snapshotReader takes each product's snapshot as the write side folds it
// and restores it: the restored state must be the folded one, or a
// process starting from the snapshot would decide otherwise.
func snapshotReader(ctx context.Context, p *pass, refuse func(*eventstore.Event, error)) {
	h := p.e.handler()
	last := map[string]*eventstore.Event{}
	for i := range p.log {
		if strings.HasPrefix(p.log[i].StreamID, product.StreamPrefix) {
			last[p.log[i].StreamID] = &p.log[i]
		}
	}
	for stream, e := range last {
		s, _, err := h.Catalog.Product(ctx, strings.TrimPrefix(stream, product.StreamPrefix))
		if err != nil {
			continue // the write side's reader reports it
		}
		data, err := s.Snapshot()
		if err != nil {
			refuse(e, fmt.Errorf("snapshot %s: %w", stream, err))
			continue
		}
		back, err := product.FromSnapshot(data)
		if err != nil {
			refuse(e, fmt.Errorf("restore the snapshot of %s: %w", stream, err))
			continue
		}
		s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
		back.CreatedAt, back.UpdatedAt = back.CreatedAt.UTC(), back.UpdatedAt.UTC()
		if !reflect.DeepEqual(back, s) {
			refuse(e, fmt.Errorf("the snapshot of %s restores\n%+v\nnot\n%+v", stream, back, s))
		}
	}
}
