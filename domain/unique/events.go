package unique

import "github.com/eventshop/eventshop/domain"

// MaxValueLength bounds a claimed value: a normalised email (at most 254
// characters) or a SKU (at most 64).
const MaxValueLength = 254

// Claimed: Value belongs to OwnerID.
type Claimed struct {
	Value   string `json:"value"`
	OwnerID string `json:"owner_id"`
}

// Released: Value no longer belongs to OwnerID.
type Released struct {
	Value   string `json:"value"`
	OwnerID string `json:"owner_id"`
	Reason  string `json:"reason"`
}

func (Claimed) EventType() string  { return "unique.claimed" }
func (Released) EventType() string { return "unique.released" }

// Registry decodes the events of claim streams.
func Registry() domain.Registry {
	r := domain.Registry{}
	domain.Register[Claimed](r)
	domain.Register[Released](r)
	return r
}

// Validate checks the value (one line, at most MaxValueLength) and its
// owner. Errors: CodeInvalid.
func (e Claimed) Validate() error { return checkClaim(e.Value, e.OwnerID, nil) }

// Validate checks the value, its former owner and the reason (one line).
// Errors: CodeInvalid.
func (e Released) Validate() error { return checkClaim(e.Value, e.OwnerID, &e.Reason) }

func checkClaim(value, owner string, reason *string) error {
	var f domain.Fields
	f.CheckName("value", value, MaxValueLength)
	f.CheckID("owner_id", owner)
	if reason != nil {
		f.CheckName("reason", *reason, domain.MaxReasonLength)
	}
	return f.Err()
}
