package product_test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
)

// snapshotFingerprints records the shape of State that each snapshot
// format stores. A change to State changes the shape: give it a new
// SnapshotFormat and record the new shape here.
var snapshotFingerprints = map[int]string{
	1: "ID string; SKU string; Name string; Description string; Price domain.Cents; Category string; VendorID string; " +
		"Images []string; Metadata json.RawMessage; Quantity int64; Reserved int64; Reservations map[string]int64; " +
		"Warehouse string; Discontinued bool; CreatedAt time.Time; UpdatedAt time.Time; Version int64",
}

// TestSnapshotFormatFollowsState: State has the shape recorded for the
// current SnapshotFormat, so a snapshot of one shape is never read as
// another.
func TestSnapshotFormatFollowsState(t *testing.T) {
	typ := reflect.TypeFor[product.State]()
	fields := make([]string, typ.NumField())
	for i := range fields {
		fields[i] = typ.Field(i).Name + " " + typ.Field(i).Type.String()
	}
	got := strings.Join(fields, "; ")
	if want, ok := snapshotFingerprints[product.SnapshotFormat]; !ok || got != want {
		t.Fatalf("State is now\n  %s\nbut snapshot format %d recorded\n  %s\n"+
			"bump product.SnapshotFormat and record the new shape", got, product.SnapshotFormat, want)
	}
}

// TestSnapshotDecidesLikeTheFold: for random histories of one product,
// a state restored from a snapshot taken at any version, then evolved by
// the events after it, equals the fold of the whole history and decides
// every command exactly as it does.
func TestSnapshotDecidesLikeTheFold(t *testing.T) {
	rng := rand.New(rand.NewSource(20261207))
	for run := 0; run < 40; run++ {
		history := randomHistory(t, rng, 50+rng.Intn(400))
		full := product.Fold(history)
		for _, cut := range []int{1, rng.Intn(len(history)) + 1, len(history)} {
			data, err := product.Fold(history[:cut]).Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			s, err := product.FromSnapshot(data)
			if err != nil {
				t.Fatalf("run %d, cut %d: %v", run, cut, err)
			}
			for _, r := range history[cut:] {
				s = product.Evolve(s, r)
			}
			if !reflect.DeepEqual(s, full) {
				t.Fatalf("run %d, snapshot at %d of %d: restored and evolved\n%+v\nfolded\n%+v", run, cut, len(history), s, full)
			}
			for _, d := range decisions(rng) {
				ea, erra := d.run(s)
				eb, errb := d.run(full)
				if !reflect.DeepEqual(ea, eb) || !reflect.DeepEqual(erra, errb) {
					t.Fatalf("run %d, snapshot at %d: %s decided %s, %v on the snapshot, %s, %v on the fold",
						run, cut, d.name, jsonOf(ea), erra, jsonOf(eb), errb)
				}
			}
		}
	}
	if _, err := product.FromSnapshot([]byte(`{"Version": -1}`)); err == nil {
		t.Error("a snapshot of no product was accepted")
	}
	if _, err := product.FromSnapshot([]byte(`{"Version": "x"}`)); err == nil {
		t.Error("a snapshot that does not decode was accepted")
	}
}

// randomHistory is a product's creation and n random commands' events.
func randomHistory(t *testing.T, rng *rand.Rand, n int) []domain.Recorded {
	t.Helper()
	var history []domain.Recorded
	s := product.New()
	record := func(events []domain.Event) {
		for _, e := range events {
			r := domain.Recorded{Event: e, Version: int64(len(history)), At: t0.Add(time.Duration(len(history)) * time.Second)}
			history = append(history, r)
			s = product.Evolve(s, r)
		}
	}
	events, err := product.DecideCreate(s, product.Create{ProductID: "p1", SKU: "S-1", Name: "N", Price: 100, VendorID: "v1",
		Quantity: 50, Metadata: []byte(`{"colour": "red", "note": "<b>R&D</b>"}`)})
	if err != nil {
		t.Fatal(err)
	}
	record(events)
	for range n {
		d := decisions(rng)[rng.Intn(7)]
		record(d.events(s))
	}
	return history
}

// decision is one command, decided on a state.
type decision struct {
	name string
	run  func(product.State) ([]domain.Event, error)
}

func (d decision) events(s product.State) []domain.Event {
	events, _ := d.run(s)
	return events
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// decisions are one of each command, with random arguments.
func decisions(rng *rand.Rand) []decision {
	order := fmt.Sprintf("o%d", rng.Intn(20))
	q := rng.Int63n(8)
	name, price := fmt.Sprintf("name %d", rng.Intn(3)), domain.Cents(rng.Int63n(1000)+1)
	discontinue := rng.Intn(50) == 0
	return []decision{
		{"reserve", func(s product.State) ([]domain.Event, error) { return product.DecideReserve(s, order, q) }},
		{"reserve", func(s product.State) ([]domain.Event, error) { return product.DecideReserve(s, order, q+1) }},
		{"release", func(s product.State) ([]domain.Event, error) { return product.DecideRelease(s, order, "test"), nil }},
		{"deduct", func(s product.State) ([]domain.Event, error) { return product.DecideDeduct(s, order), nil }},
		{"adjust", func(s product.State) ([]domain.Event, error) {
			return product.DecideAdjustInventory(s, product.AdjustInventory{Adjustment: q - 3, Reason: "recount"})
		}},
		{"update", func(s product.State) ([]domain.Event, error) {
			return product.DecideUpdate(s, product.Update{Name: &name, Price: &price})
		}},
		{"discontinue", func(s product.State) ([]domain.Event, error) {
			if !discontinue {
				return nil, nil
			}
			return product.DecideDiscontinue(s)
		}},
	}
}
