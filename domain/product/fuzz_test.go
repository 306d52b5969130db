package product_test

import (
	"encoding/json"
	"testing"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/domaintest"
	"github.com/eventshop/eventshop/domain/product"
)

// FuzzDecideCreate: whatever DecideCreate accepts passes Validate and
// comes back from the codec as it was decided, so every reader can read
// it; an update of the product so created does the same.
func FuzzDecideCreate(f *testing.F) {
	f.Add("MUG-1", "Mug", "A mug", int64(1999), "kitchen", "https://img.example/mug.png", []byte(`{"colour":"blue"}`), int64(10), "main")
	f.Add(" mug-1 ", " Mug ", "Holds tea.\r\n\tDishwasher safe.", int64(domain.MaxCents), " ", "http://a.example/x", []byte(" { \"a\" : [1, 2.5e3, \"<b>&\"] }\n"), int64(product.MaxQuantity), "")
	f.Add("S", "N", "a\x00b", int64(1), "c\u0085", "https://a.example/\u0085", []byte(`{"a":"\u0000"}`), int64(-1), "w\x7f")
	f.Add("S", "N", "", int64(1), "", "", []byte(`{"a":1e309}`), int64(0), "w")
	f.Add("S", "N", "\xff", int64(0), "c", "javascript:x", []byte(`{"\u2028":"\u2029"}`), int64(1), "w")
	reg := product.Registry()
	f.Fuzz(func(t *testing.T, sku, name, description string, price int64, category, image string, metadata []byte, quantity int64, warehouse string) {
		var images []string
		if image != "" {
			images = []string{image}
		}
		events, err := product.DecideCreate(product.New(), product.Create{
			ProductID: "p1", SKU: sku, Name: name, Description: description, Price: domain.Cents(price), Category: category,
			VendorID: "v1", Images: images, Metadata: metadata, Quantity: quantity, Warehouse: warehouse,
		})
		if err != nil {
			return
		}
		domaintest.RoundTrip(t, reg, events...)
		// The same values sent again as an update of another product.
		s := product.Fold(given(mug))
		md := json.RawMessage(metadata)
		if len(md) == 0 {
			md = nil
		}
		p := domain.Cents(price)
		updated, err := product.DecideUpdate(s, product.Update{Name: &name, Description: &description, Price: &p, Category: &category,
			Images: &images, Metadata: md})
		if err != nil {
			t.Fatalf("created with these values, but an update with them is refused: %v", err)
		}
		domaintest.RoundTrip(t, reg, updated...)
	})
}
