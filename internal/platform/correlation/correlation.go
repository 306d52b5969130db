// Package correlation carries the ids that tie a request to everything it
// causes — events, log lines, Kafka messages — through a context.
package correlation

import (
	"context"
	"log/slog"
)

// IDs are the correlation id of the request, the id of what caused the
// work (the request, or the event a process manager reacts to), and the
// acting user.
type IDs struct {
	Correlation string
	Causation   string
	Actor       string
}

type key struct{}

// With returns ctx carrying ids.
func With(ctx context.Context, ids IDs) context.Context { return context.WithValue(ctx, key{}, ids) }

// From returns the ids ctx carries, zero when none.
func From(ctx context.Context) IDs {
	ids, _ := ctx.Value(key{}).(IDs)
	return ids
}

// Handler is a slog.Handler that adds correlation_id and causation_id
// from the record's context to every line.
type Handler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h Handler) Handle(ctx context.Context, r slog.Record) error {
	if ids := From(ctx); ids.Correlation != "" {
		r.AddAttrs(slog.String("correlation_id", ids.Correlation))
		if ids.Causation != "" {
			r.AddAttrs(slog.String("causation_id", ids.Causation))
		}
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h Handler) WithAttrs(as []slog.Attr) slog.Handler { return Handler{h.Handler.WithAttrs(as)} }

// WithGroup implements slog.Handler.
func (h Handler) WithGroup(name string) slog.Handler { return Handler{h.Handler.WithGroup(name)} }
