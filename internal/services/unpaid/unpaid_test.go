package unpaid_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/services/unpaid"
	"github.com/eventshop/eventshop/internal/testsupport/redistest"
)

func TestHoldsAreBounded(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	r := unpaid.New(rdb, prefix, unpaid.Limits{Orders: 3, Units: 10})
	until := time.Now().Add(time.Hour)
	hold := func(customer, order string, units int64) unpaid.Refusal {
		t.Helper()
		ref, err := r.Hold(ctx, customer, order, units, until)
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	for i, units := range []int64{2, 2, 2} {
		if ref := hold("c1", fmt.Sprint("o", i), units); ref != "" {
			t.Fatalf("hold %d: refused (%s) under the bounds", i, ref)
		}
	}
	if ref := hold("c1", "o3", 1); ref != unpaid.TooManyOrders {
		t.Errorf("a fourth unpaid order: %q, want %q", ref, unpaid.TooManyOrders)
	}
	if ref := hold("c1", "o0", 2); ref != "" {
		t.Errorf("an order held already, held again (a retry): refused %q", ref)
	}
	if ref := hold("c2", "o9", 10); ref != "" {
		t.Errorf("another customer: refused %q", ref)
	}
	if err := r.Free(ctx, "c1", "o1"); err != nil {
		t.Fatal(err)
	}
	if ref := hold("c1", "o4", 7); ref != unpaid.TooManyUnits {
		t.Errorf("4 units held and 7 more, over 10: %q, want %q", ref, unpaid.TooManyUnits)
	}
	if ref := hold("c1", "o4", 6); ref != "" {
		t.Errorf("4 units held and 6 more, 10 in all: refused %q", ref)
	}
	if ref := hold("c2", "big", 11); ref != unpaid.TooManyUnits {
		t.Errorf("one order over the units bound: %q", ref)
	}
}

// TestHoldsEndAtTheirDeadline: a hold whose Free was lost stops counting
// when its time is up, and the keys do not outlive the last hold.
func TestHoldsEndAtTheirDeadline(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	r := unpaid.New(rdb, prefix, unpaid.Limits{Orders: 1})
	if ref, err := r.Hold(ctx, "c1", "o1", 1, time.Now().Add(300*time.Millisecond)); ref != "" || err != nil {
		t.Fatalf("first hold: %q, %v", ref, err)
	}
	if ref, _ := r.Hold(ctx, "c1", "o2", 1, time.Now().Add(time.Hour)); ref != unpaid.TooManyOrders {
		t.Fatalf("second hold at once: %q, want refused", ref)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ref, err := r.Hold(ctx, "c1", "o2", 1, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if ref == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first hold never ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
	keys, err := rdb.Keys(ctx, prefix+"unpaid:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("%s expires in %v, want with its last hold (within the hour)", k, ttl)
		}
	}
}

// TestConcurrentHoldsKeepTheBound: 20 placements at once for one
// customer with room for 5: exactly 5 are held.
func TestConcurrentHoldsKeepTheBound(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	r := unpaid.New(rdb, prefix, unpaid.Limits{Orders: 5, Units: 100})
	var wg sync.WaitGroup
	var mu sync.Mutex
	held := 0
	for i := range 20 {
		wg.Go(func() {
			ref, err := r.Hold(ctx, "c1", fmt.Sprint("o", i), 1, time.Now().Add(time.Hour))
			if err != nil {
				t.Error(err)
				return
			}
			if ref == "" {
				mu.Lock()
				held++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if held != 5 {
		t.Errorf("%d of 20 concurrent holds accepted, want 5", held)
	}
}
