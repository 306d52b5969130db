package product

import "github.com/eventshop/eventshop/domain"

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
