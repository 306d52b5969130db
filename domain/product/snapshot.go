package product

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// SnapshotFormat names the form in which Snapshot writes a State and what
// Evolve meant when it was folded. Change it with any change to State or
// to what Evolve does: a snapshot of another format is passed over, and
// the stream is folded from its start (and snapshotted anew).
// TestSnapshotFormatFollowsState fails when State changes without it.
const SnapshotFormat = 1

// Snapshot encodes s for a snapshot store. The metadata is kept byte for
// byte (no HTML escaping), so a restored state equals the folded one.
func (s State) Snapshot() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// FromSnapshot decodes what Snapshot wrote. Errors: a snapshot that does
// not decode, or is of no product.
func FromSnapshot(data []byte) (State, error) {
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return New(), fmt.Errorf("product snapshot: %w", err)
	}
	if s.Version < 0 || s.ID == "" {
		return New(), fmt.Errorf("product snapshot: no product (version %d)", s.Version)
	}
	return s, nil
}
