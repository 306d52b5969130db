package product

import "github.com/eventshop/eventshop/domain"

// CreationAbandoned fences a product id whose listing never finished (the
// process stopped between claiming the SKU and writing the product): once
// it is in the stream, that listing can no longer complete.
type CreationAbandoned struct {
	ProductID string `json:"product_id"`
}

func (CreationAbandoned) EventType() string { return "product.creation_abandoned" }

// DecideAbandon fences id's stream; nothing happens once the stream has
// events.
func DecideAbandon(s State, id string) []domain.Event {
	if s.Version >= 0 {
		return nil
	}
	return []domain.Event{CreationAbandoned{ProductID: id}}
}

// Abandoned reports whether the stream was fenced before any product was
// created in it.
func (s State) Abandoned() bool { return s.Version >= 0 && !s.Exists() }
