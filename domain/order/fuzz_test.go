package order_test

import (
	"testing"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/domaintest"
	"github.com/eventshop/eventshop/domain/order"
)

// FuzzDecidePlace: whatever DecidePlace accepts passes Validate and comes
// back from the codec as it was decided, so every reader can read it; its
// total is the sum of its lines, within MaxCents.
func FuzzDecidePlace(f *testing.F) {
	f.Add("u1", "SKU-1", "Mug", int64(1999), int64(2), int64(50), int64(3), uint8(2))
	f.Add("u1", "S", "N", int64(domain.MaxCents), int64(order.MaxLineUnits), int64(1), int64(1), uint8(1))
	f.Add("u1", "S", "N", int64(domain.MaxCents/2), int64(1), int64(domain.MaxCents/2+1), int64(1), uint8(2))
	f.Add("u\x00", "S\xff", "N\u0085", int64(-1), int64(-1), int64(0), int64(0), uint8(0))
	f.Add("u1", "S", "N", int64(1)<<62, int64(4), int64(1), int64(1), uint8(100))
	reg := order.Registry()
	f.Fuzz(func(t *testing.T, userID, sku, name string, price1, qty1, price2, qty2 int64, lines uint8) {
		items := make([]order.Item, int(lines)%(order.MaxItems+2))
		for i := range items {
			price, qty := price1, qty1
			if i%2 == 1 {
				price, qty = price2, qty2
			}
			items[i] = order.Item{ProductID: "p" + string(rune('a'+i%26)) + string(rune('a'+i/26)), SKU: sku, Name: name,
				Quantity: qty, Price: domain.Cents(price)}
		}
		events, err := order.DecidePlace(order.New(), order.Place{OrderID: "o1", UserID: userID, Items: items})
		if err != nil {
			return
		}
		created := events[0].(order.Created)
		var sum domain.Cents
		for _, it := range created.Items {
			line, ok := it.Price.Times(it.Quantity)
			if !ok || line <= 0 {
				t.Fatalf("accepted a line of %d × %s", it.Quantity, it.Price)
			}
			sum += line
		}
		if sum != created.Total || created.Total > domain.MaxCents {
			t.Fatalf("accepted a total of %s for lines summing to %s", created.Total, sum)
		}
		domaintest.RoundTrip(t, reg, events...)
	})
}
