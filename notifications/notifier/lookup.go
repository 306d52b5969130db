package notifier

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/notifications/templates"
	"github.com/eventshop/eventshop/published"
)

// ReadModels is where the notifier looks users and orders up: the user
// and order read models, which a projector keeps somewhere (they may lag,
// and a lookup that finds nothing yet is retried).
type ReadModels interface {
	User(ctx context.Context, id string) (resource.User, error)
	// OrderOwner is the id of the user who placed the order.
	OrderOwner(ctx context.Context, orderID string) (string, error)
}

// LookIn sets Recipients to the user read model and Owner to the order
// read model of m: order events after order.created carry no user id.
func (c *Config) LookIn(m ReadModels) {
	c.Recipients = func(ctx context.Context, id uuid.UUID) (templates.Recipient, error) {
		u, err := m.User(ctx, id.String())
		if err != nil {
			return templates.Recipient{}, err
		}
		return templates.Recipient{Email: u.Email, Name: u.FullName}, nil
	}
	c.Owner = func(ctx context.Context, env published.Envelope) (uuid.UUID, error) {
		id, ok := strings.CutPrefix(env.Subject, order.StreamPrefix)
		if !ok {
			return uuid.Nil, fmt.Errorf("subject %q is not an order stream", env.Subject)
		}
		owner, err := m.OrderOwner(ctx, id)
		if err != nil {
			return uuid.Nil, err
		}
		return uuid.Parse(owner)
	}
}
