package product_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/domaintest"
	"github.com/eventshop/eventshop/domain/product"
)

// t0 and given come from domaintest: histories start at t0, a minute apart.
var (
	t0    = domaintest.T0
	given = domaintest.Given
)

// outcome, ok and invalid come from domaintest.
type outcome = domaintest.Outcome

var (
	ok      = domaintest.OK
	invalid = domaintest.Invalid
)

var noop = outcome{}

func conflict(reason string) outcome { return outcome{Code: domain.CodeConflict, Reason: reason} }

var (
	notFound     = outcome{Code: domain.CodeNotFound, Reason: "product_not_found"}
	unavailable  = outcome{Code: domain.CodeInvalid, Reason: "product_unavailable"}
	discontinued = conflict("product_discontinued")
)

func ptr[T any](v T) *T { return &v }

var (
	mug = product.Created{
		ProductID: "p1", SKU: "MUG-1", Name: "Mug", Description: "A mug", Price: 1999, Category: "kitchen",
		VendorID: "v1", Images: []string{"https://img.example/mug.png"}, Metadata: json.RawMessage(`{"colour":"blue"}`),
		Quantity: 10, Warehouse: "main",
	}
	gone    = product.Discontinued{ProductID: "p1"}
	fenced  = product.CreationAbandoned{ProductID: "p1"}
	reserve = func(order string, q int64) product.Reserved {
		return product.Reserved{ProductID: "p1", OrderID: order, Quantity: q}
	}
)

func TestStreamAndSKU(t *testing.T) {
	if product.Stream("p1") != "product-p1" {
		t.Errorf("Stream = %q", product.Stream("p1"))
	}
	for in, want := range map[string]string{"mug-1": "MUG-1", "  Mug-1\t": "MUG-1", "MUG-1": "MUG-1", "": ""} {
		if got := product.NormaliseSKU(in); got != want {
			t.Errorf("NormaliseSKU(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecideCreate(t *testing.T) {
	valid := func() product.Create {
		return product.Create{
			ProductID: "p1", SKU: "MUG-1", Name: "Mug", Description: "A mug", Price: 1999, Category: "kitchen",
			VendorID: "v1", Images: []string{"https://img.example/mug.png"}, Metadata: json.RawMessage(`{"colour":"blue"}`),
			Quantity: 10, Warehouse: "main",
		}
	}
	// with is the created event of the valid command, changed by f.
	with := func(f func(*product.Created)) outcome {
		e := mug
		e.Images = []string{"https://img.example/mug.png"}
		f(&e)
		return ok(e)
	}
	same := func(*product.Created) {}
	bigObject := func(size int) json.RawMessage {
		// {"k":"xxx…"} of exactly size bytes.
		return json.RawMessage(`{"k":"` + strings.Repeat("x", size-8) + `"}`)
	}
	tests := []struct {
		name  string
		given []domain.Event
		cmd   func(*product.Create)
		then  outcome
	}{
		{"valid", nil, func(*product.Create) {}, with(same)},
		{"defaults", nil, func(c *product.Create) { c.Category, c.Warehouse, c.Images, c.Metadata = "", "", nil, nil },
			with(func(e *product.Created) {
				e.Category, e.Warehouse, e.Images, e.Metadata = "uncategorized", "main", []string{}, json.RawMessage(`{}`)
			})},
		{"blank category and warehouse default", nil, func(c *product.Create) { c.Category, c.Warehouse = " \t", "  " },
			with(func(e *product.Created) { e.Category, e.Warehouse = "uncategorized", "main" })},
		{"empty images stay empty", nil, func(c *product.Create) { c.Images = []string{} },
			with(func(e *product.Created) { e.Images = []string{} })},
		{"fields are trimmed", nil, func(c *product.Create) {
			c.SKU, c.Name, c.Category, c.Warehouse = "  MUG-1 ", "  Mug  ", " kitchen ", " north "
		}, with(func(e *product.Created) { e.Warehouse = "north" })},
		{"sku case is kept", nil, func(c *product.Create) { c.SKU = "mug-1" }, with(func(e *product.Created) { e.SKU = "mug-1" })},
		{"sku of every allowed character", nil, func(c *product.Create) { c.SKU = "A9z.b_c-D" }, with(func(e *product.Created) { e.SKU = "A9z.b_c-D" })},
		{"sku at max length", nil, func(c *product.Create) { c.SKU = strings.Repeat("S", product.MaxSKULength) },
			with(func(e *product.Created) { e.SKU = strings.Repeat("S", product.MaxSKULength) })},
		{"name at max length", nil, func(c *product.Create) { c.Name = strings.Repeat("é", product.MaxNameLength) },
			with(func(e *product.Created) { e.Name = strings.Repeat("é", product.MaxNameLength) })},
		{"description at max length", nil, func(c *product.Create) { c.Description = strings.Repeat("é", product.MaxDescriptionLength) },
			with(func(e *product.Created) { e.Description = strings.Repeat("é", product.MaxDescriptionLength) })},
		{"warehouse at max length in multi-byte characters", nil, func(c *product.Create) {
			c.Warehouse = strings.Repeat("é", product.MaxCategoryLength)
		}, with(func(e *product.Created) { e.Warehouse = strings.Repeat("é", product.MaxCategoryLength) })},
		{"category at max length in multi-byte characters", nil, func(c *product.Create) {
			c.Category = strings.Repeat("é", product.MaxCategoryLength)
		}, with(func(e *product.Created) { e.Category = strings.Repeat("é", product.MaxCategoryLength) })},
		{"empty description", nil, func(c *product.Create) { c.Description = "" }, with(func(e *product.Created) { e.Description = "" })},
		{"smallest price", nil, func(c *product.Create) { c.Price = 1 }, with(func(e *product.Created) { e.Price = 1 })},
		{"largest price", nil, func(c *product.Create) { c.Price = domain.MaxCents }, with(func(e *product.Created) { e.Price = domain.MaxCents })},
		{"quantity 0", nil, func(c *product.Create) { c.Quantity = 0 }, with(func(e *product.Created) { e.Quantity = 0 })},
		{"largest quantity", nil, func(c *product.Create) { c.Quantity = product.MaxQuantity },
			with(func(e *product.Created) { e.Quantity = product.MaxQuantity })},
		{"max images", nil, func(c *product.Create) { c.Images = images(product.MaxImages) },
			with(func(e *product.Created) { e.Images = images(product.MaxImages) })},
		{"http image", nil, func(c *product.Create) { c.Images = []string{"http://img.example/a.png"} },
			with(func(e *product.Created) { e.Images = []string{"http://img.example/a.png"} })},
		{"image URL at max length", nil, func(c *product.Create) {
			c.Images = []string{"https://img.example/" + strings.Repeat("a", product.MaxImageURLLength-20)}
		}, with(func(e *product.Created) {
			e.Images = []string{"https://img.example/" + strings.Repeat("a", product.MaxImageURLLength-20)}
		})},
		{"metadata at max size", nil, func(c *product.Create) { c.Metadata = bigObject(product.MaxMetadataBytes) },
			with(func(e *product.Created) { e.Metadata = bigObject(product.MaxMetadataBytes) })},
		// The event holds the metadata as it is stored and read back.
		{"metadata with white space", nil, func(c *product.Create) { c.Metadata = json.RawMessage(" {\"a\": [1]}\n") },
			with(func(e *product.Created) { e.Metadata = json.RawMessage(`{"a":[1]}`) })},
		{"metadata with HTML characters", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`{"a":"<b>&"}`) },
			with(func(e *product.Created) { e.Metadata = json.RawMessage(`{"a":"\u003cb\u003e\u0026"}`) })},
		{"empty metadata object", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`{}`) },
			with(func(e *product.Created) { e.Metadata = json.RawMessage(`{}`) })},

		{"description of several lines", nil, func(c *product.Create) { c.Description = "Holds tea.\r\n\tDishwasher safe." },
			with(func(e *product.Created) { e.Description = "Holds tea.\r\n\tDishwasher safe." })},
		{"metadata nested to the limit", nil, func(c *product.Create) { c.Metadata = nested(product.MaxMetadataDepth) },
			with(func(e *product.Created) { e.Metadata = nested(product.MaxMetadataDepth) })},
		{"metadata with line breaks and the largest float", nil, func(c *product.Create) {
			c.Metadata = json.RawMessage(`{"note":"a\nb\tc","big":1.7976931348623157e308,"tiny":-5e-324,"k\u00e9":[true,null]}`)
		}, with(func(e *product.Created) {
			e.Metadata = json.RawMessage(`{"note":"a\nb\tc","big":1.7976931348623157e308,"tiny":-5e-324,"k\u00e9":[true,null]}`)
		})},

		{"stream taken", []domain.Event{mug}, func(*product.Create) {}, conflict("product_exists")},
		{"stream fenced", []domain.Event{fenced}, func(*product.Create) {}, conflict("product_exists")},
		{"stream taken, command invalid too", []domain.Event{mug}, func(c *product.Create) { c.SKU = "" }, conflict("product_exists")},

		{"sku empty", nil, func(c *product.Create) { c.SKU = "" }, invalid("sku")},
		{"sku blank", nil, func(c *product.Create) { c.SKU = "   " }, invalid("sku")},
		{"sku too long", nil, func(c *product.Create) { c.SKU = strings.Repeat("S", product.MaxSKULength+1) }, invalid("sku")},
		{"sku with a space", nil, func(c *product.Create) { c.SKU = "MUG 1" }, invalid("sku")},
		{"sku with a slash", nil, func(c *product.Create) { c.SKU = "MUG/1" }, invalid("sku")},
		{"sku starting with a dash", nil, func(c *product.Create) { c.SKU = "-MUG" }, invalid("sku")},
		{"sku starting with a dot", nil, func(c *product.Create) { c.SKU = ".MUG" }, invalid("sku")},
		{"sku starting with an underscore", nil, func(c *product.Create) { c.SKU = "_MUG" }, invalid("sku")},
		{"sku not ASCII", nil, func(c *product.Create) { c.SKU = "MÜG-1" }, invalid("sku")},
		{"sku with a newline", nil, func(c *product.Create) { c.SKU = "MUG\n1" }, invalid("sku")},
		{"name empty", nil, func(c *product.Create) { c.Name = "" }, invalid("name")},
		{"name blank", nil, func(c *product.Create) { c.Name = " \t " }, invalid("name")},
		{"name too long", nil, func(c *product.Create) { c.Name = strings.Repeat("é", product.MaxNameLength+1) }, invalid("name")},
		{"name with a control character", nil, func(c *product.Create) { c.Name = "Mu\x07g" }, invalid("name")},
		{"vendor missing", nil, func(c *product.Create) { c.VendorID = "" }, invalid("vendor_id")},
		{"price 0", nil, func(c *product.Create) { c.Price = 0 }, invalid("price")},
		{"price negative", nil, func(c *product.Create) { c.Price = -1 }, invalid("price")},
		{"price too big", nil, func(c *product.Create) { c.Price = domain.MaxCents + 1 }, invalid("price")},
		{"quantity negative", nil, func(c *product.Create) { c.Quantity = -1 }, invalid("quantity")},
		{"quantity too big", nil, func(c *product.Create) { c.Quantity = product.MaxQuantity + 1 }, invalid("quantity")},
		{"description too long", nil, func(c *product.Create) { c.Description = strings.Repeat("é", product.MaxDescriptionLength+1) },
			invalid("description")},
		{"category too long", nil, func(c *product.Create) { c.Category = strings.Repeat("c", product.MaxCategoryLength+1) },
			invalid("category")},
		{"warehouse too long", nil, func(c *product.Create) { c.Warehouse = strings.Repeat("w", product.MaxCategoryLength+1) },
			invalid("warehouse")},
		{"warehouse too long in multi-byte characters", nil, func(c *product.Create) {
			c.Warehouse = strings.Repeat("é", product.MaxCategoryLength+1)
		}, invalid("warehouse")},
		{"too many images", nil, func(c *product.Create) { c.Images = images(product.MaxImages + 1) }, invalid("images")},
		{"image ftp", nil, func(c *product.Create) { c.Images = []string{"ftp://img.example/a.png"} }, invalid("images")},
		{"image javascript", nil, func(c *product.Create) { c.Images = []string{"javascript:alert(1)"} }, invalid("images")},
		{"image data URL", nil, func(c *product.Create) { c.Images = []string{"data:image/png;base64,AAAA"} }, invalid("images")},
		{"image without host", nil, func(c *product.Create) { c.Images = []string{"https:///a.png"} }, invalid("images")},
		{"image relative", nil, func(c *product.Create) { c.Images = []string{"/a.png"} }, invalid("images")},
		{"image empty", nil, func(c *product.Create) { c.Images = []string{""} }, invalid("images")},
		{"image unparsable", nil, func(c *product.Create) { c.Images = []string{"http://img.example/%zz"} }, invalid("images")},
		{"image URL too long", nil, func(c *product.Create) {
			c.Images = []string{"https://img.example/" + strings.Repeat("a", product.MaxImageURLLength-19)}
		}, invalid("images")},
		{"a bad image among good ones, two bad: one field error", nil, func(c *product.Create) {
			c.Images = []string{"https://img.example/a.png", "ftp://x/a", "gopher://x/b"}
		}, invalid("images")},
		{"metadata array", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`[1,2]`) }, invalid("metadata")},
		{"metadata string", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`"colour"`) }, invalid("metadata")},
		{"metadata number", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`42`) }, invalid("metadata")},
		{"metadata null", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`null`) }, invalid("metadata")},
		{"metadata not JSON", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`{colour: blue}`) }, invalid("metadata")},
		{"metadata unterminated", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`{"a":1`) }, invalid("metadata")},
		{"metadata with trailing data", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`{"a":1} {}`) }, invalid("metadata")},
		{"metadata too large", nil, func(c *product.Create) { c.Metadata = bigObject(product.MaxMetadataBytes + 1) }, invalid("metadata")},
		{"metadata nested too deep", nil, func(c *product.Create) { c.Metadata = nested(product.MaxMetadataDepth + 1) }, invalid("metadata")},
		{"metadata with NUL in a string", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`{"a":"x\u0000y"}`) }, invalid("metadata")},
		{"metadata with a control character in a key", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`{"a\u001b":1}`) },
			invalid("metadata")},
		{"metadata with a C1 control character", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`{"a":"\u0085"}`) },
			invalid("metadata")},
		{"metadata with a number beyond float64", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`{"a":1e309}`) }, invalid("metadata")},
		{"metadata with a negative number beyond float64", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`{"a":[-2e308]}`) },
			invalid("metadata")},
		{"metadata not UTF-8", nil, func(c *product.Create) { c.Metadata = json.RawMessage("{\"a\":\"\xff\"}") }, invalid("metadata")},
		{"metadata an unclosed array", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`{"a":[1}`) }, invalid("metadata")},
		{"metadata with a second object", nil, func(c *product.Create) { c.Metadata = json.RawMessage(`{}{}`) }, invalid("metadata")},
		{"metadata empty", nil, func(c *product.Create) { c.Metadata = json.RawMessage(` `) }, invalid("metadata")},
		// NUL goes into a jsonb document on FerretDB, which refuses it.
		{"description with NUL", nil, func(c *product.Create) { c.Description = "a\x00b" }, invalid("description")},
		{"description with an escape character", nil, func(c *product.Create) { c.Description = "a\x1b[31mb" }, invalid("description")},
		{"description not UTF-8", nil, func(c *product.Create) { c.Description = "a\xc3" }, invalid("description")},
		{"category with NUL", nil, func(c *product.Create) { c.Category = "a\x00b" }, invalid("category")},
		{"category with a line break", nil, func(c *product.Create) { c.Category = "home\ngarden" }, invalid("category")},
		{"warehouse with NUL", nil, func(c *product.Create) { c.Warehouse = "a\x00b" }, invalid("warehouse")},
		{"warehouse with DEL", nil, func(c *product.Create) { c.Warehouse = "a\x7f" }, invalid("warehouse")},
		{"name with a tab", nil, func(c *product.Create) { c.Name = "Mu\tg" }, invalid("name")},
		{"name with a C1 control character", nil, func(c *product.Create) { c.Name = "Mu\u009bg" }, invalid("name")},
		{"image with a C1 control character", nil, func(c *product.Create) { c.Images = []string{"https://img.example/a\u0085.png"} },
			invalid("images")},
		{"image with NUL", nil, func(c *product.Create) { c.Images = []string{"https://img.example/a\x00.png"} }, invalid("images")},
		{"every field bad, all listed", nil, func(c *product.Create) {
			c.SKU, c.Name, c.VendorID, c.Quantity, c.Price = "", "", "", -1, 0
			c.Description = strings.Repeat("d", product.MaxDescriptionLength+1)
			c.Category = strings.Repeat("c", product.MaxCategoryLength+1)
			c.Images, c.Metadata = []string{"nope"}, json.RawMessage(`[]`)
			c.Warehouse = strings.Repeat("w", product.MaxCategoryLength+1)
		}, invalid("sku", "name", "description", "price", "category", "vendor_id", "images", "metadata", "quantity", "warehouse")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.cmd(&c)
			events, err := product.DecideCreate(product.Fold(given(tt.given...)), c)
			tt.then.Check(t, events, err)
		})
	}
}

func TestFoldCreated(t *testing.T) {
	s := product.Fold(given(mug))
	if !s.Exists() || s.Abandoned() || s.Discontinued || s.Version != 0 {
		t.Fatalf("state %+v", s)
	}
	if s.ID != "p1" || s.SKU != "MUG-1" || s.Name != "Mug" || s.Description != "A mug" || s.Price != 1999 ||
		s.Category != "kitchen" || s.VendorID != "v1" || !reflect.DeepEqual(s.Images, mug.Images) ||
		string(s.Metadata) != `{"colour":"blue"}` || s.Quantity != 10 || s.Warehouse != "main" ||
		s.Reserved != 0 || s.Available() != 10 || !s.CreatedAt.Equal(t0) || !s.UpdatedAt.Equal(t0) {
		t.Errorf("state %+v", s)
	}
	empty := product.Fold(nil)
	if empty.Exists() || empty.Abandoned() || empty.Version != -1 {
		t.Errorf("empty %+v", empty)
	}
}

func TestDecideAbandon(t *testing.T) {
	tests := []struct {
		name  string
		given []domain.Event
		then  outcome
	}{
		{"empty stream is fenced", nil, ok(product.CreationAbandoned{ProductID: "p1"})},
		{"created product is left alone", []domain.Event{mug}, noop},
		{"fenced stream is left alone", []domain.Event{fenced}, noop},
		{"discontinued product is left alone", []domain.Event{mug, gone}, noop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.then.Check(t, product.DecideAbandon(product.Fold(given(tt.given...)), "p1"), nil)
		})
	}
	s := product.Fold(given(fenced))
	if !s.Abandoned() || s.Exists() {
		t.Errorf("fenced state: Abandoned %v Exists %v", s.Abandoned(), s.Exists())
	}
	// A fenced id is no product: every command on it fails or does nothing.
	if _, err := product.DecideUpdate(s, product.Update{Name: ptr("x")}); !errors.Is(err, &domain.Error{Code: domain.CodeNotFound}) {
		t.Errorf("update of a fenced id: %v", err)
	}
	if _, err := product.DecideReserve(s, "o1", 1); !errors.Is(err, &domain.Error{Reason: "product_unavailable"}) {
		t.Errorf("reserve on a fenced id: %v", err)
	}
}

// nested is a metadata object nested depth deep: {"k":{"k":…{}…}}.
func nested(depth int) json.RawMessage {
	return json.RawMessage(strings.Repeat(`{"k":`, depth-1) + "{}" + strings.Repeat("}", depth-1))
}

// pricey is mug at price; stocked adds units to it.
func pricey(price domain.Cents) product.Created {
	e := mug
	e.Price = price
	return e
}

func stocked(units int64) product.InventoryUpdated {
	return product.InventoryUpdated{ProductID: "p1", Adjustment: units, Quantity: 10 + units, Reason: "restock"}
}

func images(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("https://img.example/%d.png", i)
	}
	return out
}

func TestDecideUpdate(t *testing.T) {
	up := func(f func(*product.Updated)) outcome {
		e := product.Updated{ProductID: "p1"}
		f(&e)
		return ok(e)
	}
	uncategorized := product.Created{ProductID: "p1", SKU: "S", Name: "N", Price: 1, Category: "uncategorized",
		VendorID: "v1", Images: []string{}, Metadata: json.RawMessage(`{}`), Warehouse: "main"}
	tests := []struct {
		name  string
		given []domain.Event
		cmd   product.Update
		then  outcome
	}{
		{"no product", nil, product.Update{Name: ptr("x")}, notFound},
		{"fenced id", []domain.Event{fenced}, product.Update{Name: ptr("x")}, notFound},
		{"discontinued", []domain.Event{mug, gone}, product.Update{Name: ptr("x")}, discontinued},
		{"discontinued, even a no-op", []domain.Event{mug, gone}, product.Update{}, discontinued},

		{"nothing sent", []domain.Event{mug}, product.Update{}, noop},
		{"every field sent unchanged", []domain.Event{mug}, product.Update{
			Name: ptr("Mug"), Description: ptr("A mug"), Price: ptr(domain.Cents(1999)), Category: ptr("kitchen"),
			Images: ptr([]string{"https://img.example/mug.png"}), Metadata: json.RawMessage(`{"colour":"blue"}`),
		}, noop},
		{"unchanged once trimmed", []domain.Event{mug}, product.Update{
			Name: ptr("  Mug "), Category: ptr(" kitchen\t"), Metadata: json.RawMessage(" {\"colour\":\"blue\"}\n"),
		}, noop},
		{"empty images, had none", []domain.Event{uncategorized}, product.Update{Images: ptr([]string{})}, noop},
		{"blank category, already the default", []domain.Event{uncategorized}, product.Update{Category: ptr("")}, noop},

		{"name", []domain.Event{mug}, product.Update{Name: ptr("  Big mug ")}, up(func(e *product.Updated) { e.Name = ptr("Big mug") })},
		{"description", []domain.Event{mug}, product.Update{Description: ptr("Holds tea")},
			up(func(e *product.Updated) { e.Description = ptr("Holds tea") })},
		{"description cleared", []domain.Event{mug}, product.Update{Description: ptr("")},
			up(func(e *product.Updated) { e.Description = ptr("") })},
		{"price", []domain.Event{mug}, product.Update{Price: ptr(domain.Cents(2500))},
			up(func(e *product.Updated) { e.Price = ptr(domain.Cents(2500)) })},
		{"category trimmed", []domain.Event{mug}, product.Update{Category: ptr(" home ")},
			up(func(e *product.Updated) { e.Category = ptr("home") })},
		{"category cleared falls back to the default", []domain.Event{mug}, product.Update{Category: ptr("  ")},
			up(func(e *product.Updated) { e.Category = ptr("uncategorized") })},
		{"images replaced", []domain.Event{mug}, product.Update{Images: ptr([]string{"https://img.example/a.png", "https://img.example/b.png"})},
			up(func(e *product.Updated) {
				e.Images = ptr([]string{"https://img.example/a.png", "https://img.example/b.png"})
			})},
		{"images reordered", []domain.Event{mug, product.Updated{ProductID: "p1", Images: ptr([]string{"https://a.example/1", "https://a.example/2"})}},
			product.Update{Images: ptr([]string{"https://a.example/2", "https://a.example/1"})},
			up(func(e *product.Updated) { e.Images = ptr([]string{"https://a.example/2", "https://a.example/1"}) })},
		{"images emptied", []domain.Event{mug}, product.Update{Images: ptr([]string{})},
			up(func(e *product.Updated) { e.Images = ptr([]string{}) })},
		{"images emptied by a nil slice", []domain.Event{mug}, product.Update{Images: ptr([]string(nil))},
			up(func(e *product.Updated) { e.Images = ptr([]string{}) })},
		{"metadata", []domain.Event{mug}, product.Update{Metadata: json.RawMessage(`{"colour":"red"}`)},
			up(func(e *product.Updated) { e.Metadata = json.RawMessage(`{"colour":"red"}`) })},
		{"metadata in its stored form", []domain.Event{mug}, product.Update{Metadata: json.RawMessage("{\"colour\" :\n \"<red>\"}")},
			up(func(e *product.Updated) { e.Metadata = json.RawMessage(`{"colour":"\u003cred\u003e"}`) })},
		{"metadata unchanged but for its spacing", []domain.Event{mug}, product.Update{Metadata: json.RawMessage("{ \"colour\": \"blue\" }")}, noop},
		{"only the changed fields", []domain.Event{mug}, product.Update{
			Name: ptr("Mug"), Price: ptr(domain.Cents(999)), Category: ptr("kitchen"), Description: ptr("A mug"),
		}, up(func(e *product.Updated) { e.Price = ptr(domain.Cents(999)) })},
		{"every field changed", []domain.Event{mug}, product.Update{
			Name: ptr("Cup"), Description: ptr("A cup"), Price: ptr(domain.Cents(1)), Category: ptr("cups"),
			Images: ptr([]string{}), Metadata: json.RawMessage(`{}`),
		}, up(func(e *product.Updated) {
			e.Name, e.Description, e.Price, e.Category = ptr("Cup"), ptr("A cup"), ptr(domain.Cents(1)), ptr("cups")
			e.Images, e.Metadata = ptr([]string{}), json.RawMessage(`{}`)
		})},

		{"name empty", []domain.Event{mug}, product.Update{Name: ptr("")}, invalid("name")},
		{"name blank", []domain.Event{mug}, product.Update{Name: ptr("   ")}, invalid("name")},
		{"name too long", []domain.Event{mug}, product.Update{Name: ptr(strings.Repeat("n", product.MaxNameLength+1))}, invalid("name")},
		{"name with a control character", []domain.Event{mug}, product.Update{Name: ptr("a\x00b")}, invalid("name")},
		{"price 0", []domain.Event{mug}, product.Update{Price: ptr(domain.Cents(0))}, invalid("price")},
		{"price negative", []domain.Event{mug}, product.Update{Price: ptr(domain.Cents(-5))}, invalid("price")},
		{"price too big", []domain.Event{mug}, product.Update{Price: ptr(domain.MaxCents + 1)}, invalid("price")},
		{"description too long", []domain.Event{mug}, product.Update{Description: ptr(strings.Repeat("d", product.MaxDescriptionLength+1))},
			invalid("description")},
		{"category too long", []domain.Event{mug}, product.Update{Category: ptr(strings.Repeat("c", product.MaxCategoryLength+1))},
			invalid("category")},
		{"too many images", []domain.Event{mug}, product.Update{Images: ptr(images(product.MaxImages + 1))}, invalid("images")},
		{"bad image", []domain.Event{mug}, product.Update{Images: ptr([]string{"file:///etc/passwd"})}, invalid("images")},
		{"metadata not an object", []domain.Event{mug}, product.Update{Metadata: json.RawMessage(`[]`)}, invalid("metadata")},
		{"metadata null", []domain.Event{mug}, product.Update{Metadata: json.RawMessage(`null`)}, invalid("metadata")},
		{"metadata nested too deep", []domain.Event{mug}, product.Update{Metadata: nested(product.MaxMetadataDepth + 1)}, invalid("metadata")},
		{"description with NUL", []domain.Event{mug}, product.Update{Description: ptr("a\x00b")}, invalid("description")},
		{"category with NUL", []domain.Event{mug}, product.Update{Category: ptr("a\x00b")}, invalid("category")},
		{"name with NUL", []domain.Event{mug}, product.Update{Name: ptr("a\x00b")}, invalid("name")},
		{"largest price", []domain.Event{mug}, product.Update{Price: ptr(domain.MaxCents)},
			up(func(e *product.Updated) { e.Price = ptr(domain.MaxCents) })},
		{"description of several lines", []domain.Event{mug}, product.Update{Description: ptr("a\nb")},
			up(func(e *product.Updated) { e.Description = ptr("a\nb") })},
		{"metadata too large", []domain.Event{mug}, product.Update{Metadata: json.RawMessage(`{"k":"` + strings.Repeat("x", product.MaxMetadataBytes) + `"}`)},
			invalid("metadata")},
		{"bad and unchanged fields together", []domain.Event{mug}, product.Update{Name: ptr("Mug"), Price: ptr(domain.Cents(0)), Metadata: json.RawMessage(`1`)},
			invalid("price", "metadata")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := product.DecideUpdate(product.Fold(given(tt.given...)), tt.cmd)
			tt.then.Check(t, events, err)
		})
	}
}

func TestFoldUpdated(t *testing.T) {
	s := product.Fold(given(mug, product.Updated{ProductID: "p1", Price: ptr(domain.Cents(2500)), Images: ptr([]string{})}))
	if s.Price != 2500 || s.Images == nil || len(s.Images) != 0 {
		t.Errorf("price %d images %#v", s.Price, s.Images)
	}
	// Fields the event leaves out keep their value.
	if s.Name != "Mug" || s.Description != "A mug" || s.Category != "kitchen" || string(s.Metadata) != `{"colour":"blue"}` {
		t.Errorf("state %+v", s)
	}
	if !s.UpdatedAt.Equal(t0.Add(time.Minute)) || !s.CreatedAt.Equal(t0) || s.Version != 1 {
		t.Errorf("created %v updated %v version %d", s.CreatedAt, s.UpdatedAt, s.Version)
	}
	s = product.Fold(given(mug, product.Updated{ProductID: "p1", Name: ptr("Cup"), Description: ptr(""), Category: ptr("cups"),
		Metadata: json.RawMessage(`{"a":1}`)}))
	if s.Name != "Cup" || s.Description != "" || s.Category != "cups" || string(s.Metadata) != `{"a":1}` || s.Price != 1999 ||
		len(s.Images) != 1 {
		t.Errorf("state %+v", s)
	}
}

func TestDecideDiscontinue(t *testing.T) {
	tests := []struct {
		name  string
		given []domain.Event
		then  outcome
	}{
		{"no product", nil, notFound},
		{"fenced id", []domain.Event{fenced}, notFound},
		{"live", []domain.Event{mug}, ok(product.Discontinued{ProductID: "p1"})},
		{"live with stock held", []domain.Event{mug, reserve("o1", 2)}, ok(product.Discontinued{ProductID: "p1"})},
		{"again changes nothing", []domain.Event{mug, gone}, noop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := product.DecideDiscontinue(product.Fold(given(tt.given...)))
			tt.then.Check(t, events, err)
		})
	}
	s := product.Fold(given(mug, reserve("o1", 2), gone))
	if !s.Discontinued || !s.Exists() || s.Reserved != 2 || s.Quantity != 10 {
		t.Errorf("discontinued state %+v", s)
	}
}

func TestDecideAdjustInventory(t *testing.T) {
	held := []domain.Event{mug, reserve("o1", 4)} // quantity 10, reserved 4
	adj := func(a int64, q int64, reason, warehouse string) outcome {
		return ok(product.InventoryUpdated{ProductID: "p1", Adjustment: a, Quantity: q, Reason: reason, Warehouse: warehouse})
	}
	belowReserved := conflict("below_reserved")
	tests := []struct {
		name  string
		given []domain.Event
		cmd   product.AdjustInventory
		then  outcome
		extra map[string]any
	}{
		{"no product", nil, product.AdjustInventory{Adjustment: 1, Reason: "restock"}, notFound, nil},
		{"fenced id", []domain.Event{fenced}, product.AdjustInventory{Adjustment: 1, Reason: "restock"}, notFound, nil},
		{"discontinued", []domain.Event{mug, gone}, product.AdjustInventory{Adjustment: 1, Reason: "restock"}, discontinued, nil},

		{"restock", held, product.AdjustInventory{Adjustment: 5, Reason: "restock"}, adj(5, 15, "restock", ""), nil},
		{"reason and warehouse trimmed", held, product.AdjustInventory{Adjustment: 5, Reason: "  restock ", Warehouse: " north "},
			adj(5, 15, "restock", "north"), nil},
		{"shrink to exactly the reserved units", held, product.AdjustInventory{Adjustment: -6, Reason: "breakage"},
			adj(-6, 4, "breakage", ""), nil},
		{"shrink to zero with nothing reserved", []domain.Event{mug}, product.AdjustInventory{Adjustment: -10, Reason: "recount"},
			adj(-10, 0, "recount", ""), nil},
		{"shrink after a deduction freed stock", []domain.Event{mug, reserve("o1", 4), product.Deducted{ProductID: "p1", OrderID: "o1", Quantity: 4}},
			product.AdjustInventory{Adjustment: -6, Reason: "recount"}, adj(-6, 0, "recount", ""), nil},
		{"grow to the limit", []domain.Event{mug}, product.AdjustInventory{Adjustment: product.MaxQuantity - 10, Reason: "r"},
			adj(product.MaxQuantity-10, product.MaxQuantity, "r", ""), nil},
		{"reason at max length", held, product.AdjustInventory{Adjustment: 1, Reason: strings.Repeat("r", 500)},
			adj(1, 11, strings.Repeat("r", 500), ""), nil},
		{"reason at max length in multi-byte characters", held, product.AdjustInventory{Adjustment: 1, Reason: strings.Repeat("é", 500)},
			adj(1, 11, strings.Repeat("é", 500), ""), nil},
		{"warehouse at max length in multi-byte characters", held,
			product.AdjustInventory{Adjustment: 1, Reason: "r", Warehouse: strings.Repeat("é", product.MaxCategoryLength)},
			adj(1, 11, "r", strings.Repeat("é", product.MaxCategoryLength)), nil},

		{"below reserved", held, product.AdjustInventory{Adjustment: -7, Reason: "breakage"},
			belowReserved, map[string]any{"product_id": "p1", "quantity": int64(10), "reserved": int64(4)}},
		{"below zero with nothing reserved", []domain.Event{mug}, product.AdjustInventory{Adjustment: -11, Reason: "recount"},
			belowReserved, map[string]any{"product_id": "p1", "quantity": int64(10), "reserved": int64(0)}},
		{"above the limit", []domain.Event{mug}, product.AdjustInventory{Adjustment: product.MaxQuantity - 9, Reason: "r"},
			conflict("quantity_too_large"), nil},
		{"zero", held, product.AdjustInventory{Adjustment: 0, Reason: "nothing"}, invalid("adjustment"), nil},
		{"too large", held, product.AdjustInventory{Adjustment: product.MaxQuantity + 1, Reason: "r"}, invalid("adjustment"), nil},
		{"too small", held, product.AdjustInventory{Adjustment: -product.MaxQuantity - 1, Reason: "r"}, invalid("adjustment"), nil},
		{"no reason", held, product.AdjustInventory{Adjustment: 1}, invalid("reason"), nil},
		{"blank reason", held, product.AdjustInventory{Adjustment: 1, Reason: " \n "}, invalid("reason"), nil},
		{"reason too long", held, product.AdjustInventory{Adjustment: 1, Reason: strings.Repeat("r", 501)}, invalid("reason"), nil},
		{"reason too long in multi-byte characters", held, product.AdjustInventory{Adjustment: 1, Reason: strings.Repeat("é", 501)},
			invalid("reason"), nil},
		{"warehouse too long", held, product.AdjustInventory{Adjustment: 1, Reason: "r", Warehouse: strings.Repeat("w", product.MaxCategoryLength+1)},
			invalid("warehouse"), nil},
		{"reason of several lines", held, product.AdjustInventory{Adjustment: 1, Reason: "recount\r\n\tafter audit"},
			adj(1, 11, "recount\r\n\tafter audit", ""), nil},
		{"reason with NUL", held, product.AdjustInventory{Adjustment: 1, Reason: "a\x00b"}, invalid("reason"), nil},
		{"warehouse with NUL", held, product.AdjustInventory{Adjustment: 1, Reason: "r", Warehouse: "a\x00b"}, invalid("warehouse"), nil},
		{"warehouse with a line break", held, product.AdjustInventory{Adjustment: 1, Reason: "r", Warehouse: "a\nb"}, invalid("warehouse"), nil},
		{"largest adjustment down", []domain.Event{mug, product.InventoryUpdated{ProductID: "p1", Adjustment: product.MaxQuantity - 10,
			Quantity: product.MaxQuantity, Reason: "r"}}, product.AdjustInventory{Adjustment: -product.MaxQuantity, Reason: "r"},
			adj(-product.MaxQuantity, 0, "r", ""), nil},
		{"an adjustment that would overflow", held, product.AdjustInventory{Adjustment: math.MaxInt64, Reason: "r"}, invalid("adjustment"), nil},
		{"an adjustment that would overflow down", held, product.AdjustInventory{Adjustment: math.MinInt64, Reason: "r"}, invalid("adjustment"), nil},
		{"zero and no reason: both listed", held, product.AdjustInventory{}, invalid("adjustment", "reason"), nil},
		// Validation comes before the stock check.
		{"no reason and below reserved", held, product.AdjustInventory{Adjustment: -100}, invalid("reason"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := product.DecideAdjustInventory(product.Fold(given(tt.given...)), tt.cmd)
			tt.then.Check(t, events, err)
			if tt.extra != nil {
				var de *domain.Error
				errors.As(err, &de)
				if !reflect.DeepEqual(de.Extra, tt.extra) {
					t.Errorf("extra %#v, want %#v", de.Extra, tt.extra)
				}
			}
		})
	}
}

func TestFoldInventoryUpdated(t *testing.T) {
	s := product.Fold(given(mug, reserve("o1", 4),
		product.InventoryUpdated{ProductID: "p1", Adjustment: 5, Quantity: 15, Reason: "restock", Warehouse: "north"}))
	if s.Quantity != 15 || s.Reserved != 4 || s.Available() != 11 || s.Warehouse != "north" {
		t.Errorf("state %+v", s)
	}
	// An adjustment that names no warehouse keeps the current one.
	s = product.Fold(given(mug, product.InventoryUpdated{ProductID: "p1", Adjustment: -1, Quantity: 9, Reason: "r"}))
	if s.Quantity != 9 || s.Warehouse != "main" {
		t.Errorf("state %+v", s)
	}
}

func TestDecideReserve(t *testing.T) {
	tests := []struct {
		name     string
		given    []domain.Event
		order    string
		quantity int64
		then     outcome
		extra    map[string]any
	}{
		{"some", []domain.Event{mug}, "o1", 3, ok(reserve("o1", 3)), nil},
		{"exactly what is available", []domain.Event{mug}, "o1", 10, ok(reserve("o1", 10)), nil},
		{"exactly what other orders left", []domain.Event{mug, reserve("o1", 4)}, "o2", 6, ok(reserve("o2", 6)), nil},
		{"after a restock", []domain.Event{mug, reserve("o1", 10),
			product.InventoryUpdated{ProductID: "p1", Adjustment: 2, Quantity: 12, Reason: "r"}}, "o2", 2, ok(reserve("o2", 2)), nil},
		{"after another order's release", []domain.Event{mug, reserve("o1", 10),
			product.Released{ProductID: "p1", OrderID: "o1", Quantity: 10}}, "o2", 10, ok(reserve("o2", 10)), nil},

		{"one more than available", []domain.Event{mug}, "o1", 11, conflict("insufficient_stock"),
			map[string]any{"product_id": "p1", "sku": "MUG-1", "available": int64(10), "requested": int64(11)}},
		{"one more than other orders left", []domain.Event{mug, reserve("o1", 4)}, "o2", 7, conflict("insufficient_stock"),
			map[string]any{"product_id": "p1", "sku": "MUG-1", "available": int64(6), "requested": int64(7)}},
		{"none left", []domain.Event{mug, reserve("o1", 10)}, "o2", 1, conflict("insufficient_stock"),
			map[string]any{"product_id": "p1", "sku": "MUG-1", "available": int64(0), "requested": int64(1)}},
		{"after a deduction", []domain.Event{mug, reserve("o1", 8), product.Deducted{ProductID: "p1", OrderID: "o1", Quantity: 8}},
			"o2", 3, conflict("insufficient_stock"),
			map[string]any{"product_id": "p1", "sku": "MUG-1", "available": int64(2), "requested": int64(3)}},

		{"twice for the same order", []domain.Event{mug, reserve("o1", 3)}, "o1", 3, noop, nil},
		{"twice for the same order, another quantity", []domain.Event{mug, reserve("o1", 3)}, "o1", 5, noop, nil},
		{"twice for the same order, more than available", []domain.Event{mug, reserve("o1", 10)}, "o1", 10, noop, nil},

		{"quantity 0", []domain.Event{mug}, "o1", 0, invalid("quantity"), nil},
		// A price raised after the order was checked: the line total is
		// over the bound (the order's own check is the last word).
		{"line total over the bound", []domain.Event{pricey(domain.MaxCents), stocked(100)}, "o1", 2, invalid("items.quantity"),
			map[string]any{"product_id": "p1"}},
		{"line total at the bound", []domain.Event{pricey(domain.MaxCents / 4), stocked(100)}, "o1", 4, ok(reserve("o1", 4)), nil},
		{"line total a cent over the bound", []domain.Event{pricey(domain.MaxCents/4 + 1), stocked(100)}, "o1", 4, invalid("items.quantity"), nil},
		{"no order id", []domain.Event{mug}, "", 1, invalid("order_id"), nil},
		{"quantity negative", []domain.Event{mug}, "o1", -3, invalid("quantity"), nil},
		{"discontinued", []domain.Event{mug, gone}, "o1", 1, unavailable, map[string]any{"product_id": "p1"}},
		{"discontinued, order already holds stock", []domain.Event{mug, reserve("o1", 1), gone}, "o1", 1, unavailable, nil},
		{"unknown product", nil, "o1", 1, unavailable, nil},
		{"fenced id", []domain.Event{fenced}, "o1", 1, unavailable, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := product.DecideReserve(product.Fold(given(tt.given...)), tt.order, tt.quantity)
			tt.then.Check(t, events, err)
			if tt.extra != nil {
				var de *domain.Error
				errors.As(err, &de)
				if !reflect.DeepEqual(de.Extra, tt.extra) {
					t.Errorf("extra %#v, want %#v", de.Extra, tt.extra)
				}
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	err := product.Unavailable("p9")
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("Unavailable is a %T", err)
	}
	if de.Code != domain.CodeInvalid || de.Reason != "product_unavailable" ||
		len(de.Fields) != 1 || de.Fields[0].Field != "items.product_id" || de.Extra["product_id"] != "p9" ||
		!strings.Contains(de.Detail, "p9") {
		t.Errorf("Unavailable = %+v", de)
	}
}

func TestDecideReleaseAndDeduct(t *testing.T) {
	released := func(o string, q int64) product.Released {
		return product.Released{ProductID: "p1", OrderID: o, Quantity: q, Reason: "order_cancelled"}
	}
	deducted := func(o string, q int64) product.Deducted {
		return product.Deducted{ProductID: "p1", OrderID: o, Quantity: q}
	}
	tests := []struct {
		name    string
		given   []domain.Event
		release outcome
		deduct  outcome
	}{
		{"no product", nil, noop, noop},
		{"no reservation", []domain.Event{mug}, noop, noop},
		{"another order's reservation", []domain.Event{mug, reserve("o2", 3)}, noop, noop},
		{"held", []domain.Event{mug, reserve("o1", 3)}, ok(released("o1", 3)), ok(deducted("o1", 3))},
		{"held beside other orders", []domain.Event{mug, reserve("o2", 2), reserve("o1", 3), reserve("o3", 1)},
			ok(released("o1", 3)), ok(deducted("o1", 3))},
		{"held, product discontinued since", []domain.Event{mug, reserve("o1", 3), gone}, ok(released("o1", 3)), ok(deducted("o1", 3))},
		{"already released", []domain.Event{mug, reserve("o1", 3), released("o1", 3)}, noop, noop},
		{"already deducted", []domain.Event{mug, reserve("o1", 3), deducted("o1", 3)}, noop, noop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := product.Fold(given(tt.given...))
			tt.release.Check(t, product.DecideRelease(s, "o1", "order_cancelled"), nil)
			tt.deduct.Check(t, product.DecideDeduct(s, "o1"), nil)
		})
	}
}

func TestFoldStock(t *testing.T) {
	tests := []struct {
		name                      string
		given                     []domain.Event
		quantity, reserved, avail int64
		reservations              map[string]int64
	}{
		{"reserved", []domain.Event{mug, reserve("o1", 3), reserve("o2", 2)}, 10, 5, 5, map[string]int64{"o1": 3, "o2": 2}},
		{"released", []domain.Event{mug, reserve("o1", 3), reserve("o2", 2),
			product.Released{ProductID: "p1", OrderID: "o1", Quantity: 3}}, 10, 2, 8, map[string]int64{"o2": 2}},
		{"deducted", []domain.Event{mug, reserve("o1", 3), reserve("o2", 2),
			product.Deducted{ProductID: "p1", OrderID: "o1", Quantity: 3}}, 7, 2, 5, map[string]int64{"o2": 2}},
		{"all gone", []domain.Event{mug, reserve("o1", 10), product.Deducted{ProductID: "p1", OrderID: "o1", Quantity: 10}},
			0, 0, 0, map[string]int64{}},
	}
	for _, tt := range tests {
		s := product.Fold(given(tt.given...))
		if s.Quantity != tt.quantity || s.Reserved != tt.reserved || s.Available() != tt.avail {
			t.Errorf("%s: quantity %d reserved %d available %d, want %d %d %d", tt.name, s.Quantity, s.Reserved, s.Available(),
				tt.quantity, tt.reserved, tt.avail)
		}
		if len(s.Reservations) != len(tt.reservations) || (len(tt.reservations) > 0 && !reflect.DeepEqual(s.Reservations, tt.reservations)) {
			t.Errorf("%s: reservations %v, want %v", tt.name, s.Reservations, tt.reservations)
		}
	}
}

func TestCloneSharesNothingMutable(t *testing.T) {
	s := product.Fold(given(mug, reserve("o1", 3)))
	c := s.Clone()
	next := product.Evolve(c, domain.Recorded{Event: reserve("o2", 2), Version: 2, At: t0})
	next.Images[0] = "changed"
	if _, ok := s.Reservations["o2"]; ok || s.Reserved != 3 {
		t.Errorf("evolving a clone changed the original: %v reserved %d", s.Reservations, s.Reserved)
	}
	if s.Images[0] != "https://img.example/mug.png" {
		t.Errorf("clone shares images: %v", s.Images)
	}
	if next.Reservations["o2"] != 2 || next.Reserved != 5 {
		t.Errorf("next %v reserved %d", next.Reservations, next.Reserved)
	}
	// Folding copies the event's images: changing the event later does not
	// reach the state.
	ev := mug
	ev.Images = []string{"https://img.example/a.png"}
	st := product.Fold(given(ev))
	ev.Images[0] = "changed"
	if st.Images[0] != "https://img.example/a.png" {
		t.Errorf("state shares the event's images: %v", st.Images)
	}
}
