package domain_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/unique"
	"github.com/eventshop/eventshop/domain/user"
)

func allRegistries() map[string]domain.Registry {
	return map[string]domain.Registry{
		"order":   order.Registry(),
		"product": product.Registry(),
		"unique":  unique.Registry(),
		"user":    user.Registry(),
	}
}

func merged() domain.Registry {
	return order.Registry().Merge(product.Registry(), unique.Registry(), user.Registry())
}

func ptr[T any](v T) *T { return &v }

// storedEvents holds, for every event type, a sample and its stored form
// as written by schema version 1. Stored history never changes, so a
// failure here means old events no longer decode.
var storedEvents = []struct {
	wire   string
	event  domain.Event
	stored string
}{
	{"order.created", order.Created{OrderID: "o1", UserID: "u1", Total: 4148, Items: []order.Item{
		{ProductID: "p1", SKU: "SKU-1", Name: "Mug", Quantity: 2, Price: 1999},
		{ProductID: "p2", SKU: "SKU-2", Name: "Pen", Quantity: 3, Price: 50},
	}}, `{"order_id":"o1","user_id":"u1","items":[{"product_id":"p1","sku":"SKU-1","name":"Mug","quantity":2,"price":19.99},{"product_id":"p2","sku":"SKU-2","name":"Pen","quantity":3,"price":0.50}],"total":41.48}`},
	{"order.paid", order.Paid{OrderID: "o1", PaymentID: "pay_1", Amount: 4148, Last4: "4242"},
		`{"order_id":"o1","payment_id":"pay_1","amount":41.48,"last4":"4242"}`},
	{"order.completed", order.Completed{OrderID: "o1"}, `{"order_id":"o1"}`},
	{"order.cancelled", order.Cancelled{OrderID: "o1", Reason: "changed my mind", Refunded: true},
		`{"order_id":"o1","reason":"changed my mind","refunded":true}`},
	{"order.refunded", order.Refunded{OrderID: "o1", ChargeID: "ch_1", RefundID: "re_1", Amount: 4148},
		`{"order_id":"o1","charge_id":"ch_1","refund_id":"re_1","amount":41.48}`},
	{"order.payment_voided", order.PaymentVoided{OrderID: "o1", ChargeID: "ch_1", Amount: 4148},
		`{"order_id":"o1","charge_id":"ch_1","amount":41.48}`},
	{"order.placement_abandoned", order.PlacementAbandoned{OrderID: "o1", Reason: "placement_timeout"},
		`{"order_id":"o1","reason":"placement_timeout"}`},

	{"product.created", product.Created{ProductID: "p1", SKU: "SKU-1", Name: "Mug", Description: "A mug", Price: 1999,
		Category: "kitchen", VendorID: "v1", Images: []string{"https://img.example/mug.png"},
		Metadata: json.RawMessage(`{"colour":"blue"}`), Quantity: 10, Warehouse: "main"},
		`{"product_id":"p1","sku":"SKU-1","name":"Mug","description":"A mug","price":19.99,"category":"kitchen","vendor_id":"v1","images":["https://img.example/mug.png"],"metadata":{"colour":"blue"},"quantity":10,"warehouse":"main"}`},
	{"product.updated", product.Updated{ProductID: "p1", Name: ptr("Big mug"), Description: ptr(""), Price: ptr(domain.Cents(2450)),
		Category: ptr("home"), Images: ptr([]string{}), Metadata: json.RawMessage(`{"size":"L"}`)},
		`{"product_id":"p1","name":"Big mug","description":"","price":24.50,"category":"home","images":[],"metadata":{"size":"L"}}`},
	{"product.discontinued", product.Discontinued{ProductID: "p1"}, `{"product_id":"p1"}`},
	{"product.creation_abandoned", product.CreationAbandoned{ProductID: "p1"}, `{"product_id":"p1"}`},
	{"inventory.updated", product.InventoryUpdated{ProductID: "p1", Adjustment: -3, Quantity: 7, Reason: "breakage", Warehouse: "north"},
		`{"product_id":"p1","adjustment":-3,"quantity":7,"reason":"breakage","warehouse":"north"}`},
	{"inventory.reserved", product.Reserved{ProductID: "p1", OrderID: "o1", Quantity: 2},
		`{"product_id":"p1","order_id":"o1","quantity":2}`},
	{"inventory.released", product.Released{ProductID: "p1", OrderID: "o1", Quantity: 2, Reason: "order_cancelled"},
		`{"product_id":"p1","order_id":"o1","quantity":2,"reason":"order_cancelled"}`},
	{"inventory.deducted", product.Deducted{ProductID: "p1", OrderID: "o1", Quantity: 2},
		`{"product_id":"p1","order_id":"o1","quantity":2}`},

	{"unique.claimed", unique.Claimed{Value: "ada@example.com", OwnerID: "u1"}, `{"value":"ada@example.com","owner_id":"u1"}`},
	{"unique.released", unique.Released{Value: "ada@example.com", OwnerID: "u1", Reason: "owner_never_created"},
		`{"value":"ada@example.com","owner_id":"u1","reason":"owner_never_created"}`},

	{"user.registered", user.Registered{UserID: "u1", Email: "ada@example.com", FullName: "Ada", Roles: []string{"customer"}},
		`{"user_id":"u1","email":"ada@example.com","full_name":"Ada","roles":["customer"]}`},
	{"user.credentials_set", user.CredentialsSet{UserID: "u1", PasswordHash: "$argon2id$x"},
		`{"user_id":"u1","password_hash":"$argon2id$x"}`},
	{"user.role_granted", user.RoleGranted{UserID: "u1", Role: "admin"}, `{"user_id":"u1","role":"admin"}`},
	{"user.role_revoked", user.RoleRevoked{UserID: "u1", Role: "vendor"}, `{"user_id":"u1","role":"vendor"}`},
	{"user.registration_abandoned", user.RegistrationAbandoned{UserID: "u1"}, `{"user_id":"u1"}`},
	{"user.admin_added", user.AdminAdded{UserID: "u1"}, `{"user_id":"u1"}`},
	{"user.admin_removed", user.AdminRemoved{UserID: "u1"}, `{"user_id":"u1"}`},
}

func TestEveryRegisteredEventHasASample(t *testing.T) {
	reg := merged()
	sampled := map[string]bool{}
	for _, s := range storedEvents {
		if sampled[s.wire] {
			t.Errorf("%s sampled twice", s.wire)
		}
		sampled[s.wire] = true
		if _, ok := reg[s.wire]; !ok {
			t.Errorf("%s is not registered", s.wire)
		}
	}
	var missing []string
	for wire := range reg {
		if !sampled[wire] {
			missing = append(missing, wire)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("registered event types without a sample here: %v", missing)
	}
}

// Wire names are the contract (API.md); they never follow Go type names.
func TestWireNames(t *testing.T) {
	for _, s := range storedEvents {
		if got := s.event.EventType(); got != s.wire {
			t.Errorf("%T.EventType() = %q, want %q", s.event, got, s.wire)
		}
	}
}

func TestRegistriesDoNotShareWireNames(t *testing.T) {
	owner := map[string]string{}
	total := 0
	for pkg, reg := range allRegistries() {
		total += len(reg)
		for wire := range reg {
			if other, ok := owner[wire]; ok {
				t.Errorf("%s is registered by both %s and %s", wire, other, pkg)
			}
			owner[wire] = pkg
		}
	}
	if len(merged()) != total {
		t.Errorf("merged registry holds %d types, the packages %d", len(merged()), total)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	for pkg, reg := range allRegistries() {
		for _, s := range storedEvents {
			if _, ok := reg[s.wire]; !ok {
				continue
			}
			t.Run(pkg+"/"+s.wire, func(t *testing.T) {
				data, err := json.Marshal(s.event)
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				got, err := reg.Decode(s.event.EventType(), 1, data)
				if err != nil {
					t.Fatalf("Decode(%s): %v", data, err)
				}
				if reflect.TypeOf(got) != reflect.TypeOf(s.event) {
					t.Fatalf("Decode returned a %T, want a %T (a value, not a pointer)", got, s.event)
				}
				if !reflect.DeepEqual(got, s.event) {
					t.Errorf("round trip:\n got %#v\nwant %#v", got, s.event)
				}
			})
		}
	}
}

func TestStoredVersionOneStillDecodes(t *testing.T) {
	reg := merged()
	for _, s := range storedEvents {
		t.Run(s.wire, func(t *testing.T) {
			got, err := reg.Decode(s.wire, 1, []byte(s.stored))
			if err != nil {
				t.Fatalf("Decode(%s): %v", s.stored, err)
			}
			if !reflect.DeepEqual(got, s.event) {
				t.Errorf("stored form decodes to\n %#v\nwant %#v", got, s.event)
			}
			// Marshalling the sample writes the same document: the stored
			// form is what the code writes today.
			data, _ := json.Marshal(s.event)
			var a, b any
			if err := json.Unmarshal(data, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(s.stored), &b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("written as %s\n  stored as %s", data, s.stored)
			}
		})
	}
}

func TestDecodeIgnoresAddedFields(t *testing.T) {
	got, err := merged().Decode("order.completed", 1, []byte(`{"order_id":"o1","completed_by":"admin"}`))
	if err != nil || !reflect.DeepEqual(got, order.Completed{OrderID: "o1"}) {
		t.Errorf("Decode = %#v, %v", got, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	reg := merged()
	t.Run("unknown type", func(t *testing.T) {
		_, err := reg.Decode("order.teleported", 1, []byte(`{}`))
		var unknown *domain.UnknownEventError
		if !errors.As(err, &unknown) || unknown.Type != "order.teleported" {
			t.Fatalf("err = %v (%T), want *UnknownEventError for order.teleported", err, err)
		}
		if !strings.Contains(err.Error(), "order.teleported") {
			t.Errorf("Error() = %q does not name the type", err.Error())
		}
	})
	t.Run("unknown in an empty registry", func(t *testing.T) {
		_, err := domain.Registry{}.Decode("order.created", 1, []byte(`{}`))
		var unknown *domain.UnknownEventError
		if !errors.As(err, &unknown) {
			t.Fatalf("err = %v, want *UnknownEventError", err)
		}
	})
	t.Run("newer schema version refused", func(t *testing.T) {
		for _, v := range []int{2, 3, 100} {
			ev, err := reg.Decode("order.created", v, []byte(`{"order_id":"o1","total":1.00}`))
			if err == nil {
				t.Fatalf("Decode with schema version %d = %#v, want an error", v, ev)
			}
			var unknown *domain.UnknownEventError
			if errors.As(err, &unknown) {
				t.Errorf("schema version %d: got UnknownEventError, want a version error", v)
			}
		}
	})
	t.Run("bad json", func(t *testing.T) {
		if _, err := reg.Decode("order.created", 1, []byte(`{"order_id":`)); err == nil {
			t.Fatal("want an error")
		}
	})
	t.Run("money with three decimals", func(t *testing.T) {
		if _, err := reg.Decode("order.paid", 1, []byte(`{"order_id":"o1","amount":1.001}`)); err == nil {
			t.Fatal("want an error")
		}
	})
}

func TestMergeDoesNotChangeItsInputs(t *testing.T) {
	a, b := order.Registry(), user.Registry()
	na, nb := len(a), len(b)
	m := a.Merge(b)
	if len(a) != na || len(b) != nb || len(m) != na+nb {
		t.Errorf("lens after Merge: a %d (was %d), b %d (was %d), merged %d", len(a), na, len(b), nb, len(m))
	}
	if len(domain.Registry{}.Merge()) != 0 {
		t.Error("merging nothing gave entries")
	}
}

func TestRegistryFactoriesAreFresh(t *testing.T) {
	reg := product.Registry()
	first, err := reg.Decode("product.created", 1, []byte(`{"product_id":"p1","images":["https://a.example/x"]}`))
	if err != nil {
		t.Fatal(err)
	}
	second, err := reg.Decode("product.created", 1, []byte(`{"product_id":"p2"}`))
	if err != nil {
		t.Fatal(err)
	}
	if first.(product.Created).ProductID != "p1" || second.(product.Created).Images != nil {
		t.Errorf("decoding shares state between calls: %#v then %#v", first, second)
	}
}

// broken holds, for every event type, a sample that breaks one of its
// write bounds and the field Validate must name. An event type registered
// without a Validate that refuses something fails
// TestEveryRegisteredEventValidates.
var broken = map[string]struct {
	event domain.Event
	field string
}{
	"order.created": {order.Created{OrderID: "o1", UserID: "u1", Total: domain.MaxCents * 10_000,
		Items: []order.Item{{ProductID: "p1", SKU: "S", Name: "N", Quantity: 10_000, Price: domain.MaxCents}}}, "items[0].quantity"},
	"order.paid":                {order.Paid{OrderID: "o1", PaymentID: "pay_1", Amount: domain.MaxCents + 1, Last4: "4242"}, "amount"},
	"order.completed":           {order.Completed{OrderID: "o1\x00"}, "order_id"},
	"order.cancelled":           {order.Cancelled{OrderID: "o1", Reason: "a\x00b"}, "reason"},
	"order.refunded":            {order.Refunded{OrderID: "o1", RefundID: "re_1", Amount: -1}, "amount"},
	"order.payment_voided":      {order.PaymentVoided{OrderID: "o1", ChargeID: "", Amount: 1}, "charge_id"},
	"order.placement_abandoned": {order.PlacementAbandoned{OrderID: "o1", Reason: "x\ny"}, "reason"},

	"product.created": {product.Created{ProductID: "p1", SKU: "S", Name: "N", Description: "a\x00b", Price: 1, Category: "c",
		VendorID: "v1", Images: []string{}, Metadata: json.RawMessage(`{}`), Warehouse: "main"}, "description"},
	"product.updated":            {product.Updated{ProductID: "p1", Metadata: json.RawMessage(`{"a":1e999}`)}, "metadata"},
	"product.discontinued":       {product.Discontinued{}, "product_id"},
	"product.creation_abandoned": {product.CreationAbandoned{ProductID: " "}, "product_id"},
	"inventory.updated":          {product.InventoryUpdated{ProductID: "p1", Adjustment: 1, Quantity: product.MaxQuantity + 1, Reason: "r"}, "quantity"},
	"inventory.reserved":         {product.Reserved{ProductID: "p1", OrderID: "o1", Quantity: 0}, "quantity"},
	"inventory.released":         {product.Released{ProductID: "p1", OrderID: "o1", Quantity: 1}, "reason"},
	"inventory.deducted":         {product.Deducted{ProductID: "p1", Quantity: 1}, "order_id"},

	"unique.claimed":  {unique.Claimed{Value: strings.Repeat("v", unique.MaxValueLength+1), OwnerID: "u1"}, "value"},
	"unique.released": {unique.Released{Value: "v", OwnerID: "u1", Reason: "a\x1bb"}, "reason"},

	"user.registered":             {user.Registered{UserID: "u1", Email: "Ada@example.com", FullName: "Ada", Roles: []string{"customer"}}, "email"},
	"user.credentials_set":        {user.CredentialsSet{UserID: "u1", PasswordHash: ""}, "password_hash"},
	"user.role_granted":           {user.RoleGranted{UserID: "u1", Role: "root"}, "role"},
	"user.role_revoked":           {user.RoleRevoked{UserID: "u1", Role: ""}, "role"},
	"user.registration_abandoned": {user.RegistrationAbandoned{UserID: strings.Repeat("u", domain.MaxIDLength+1)}, "user_id"},
	"user.admin_added":            {user.AdminAdded{UserID: "u\u0085"}, "user_id"},
	"user.admin_removed":          {user.AdminRemoved{}, "user_id"},
}

// Every registered event type holds its write bounds: its stored sample
// passes Validate, and a sample breaking one bound is refused naming the
// field.
func TestEveryRegisteredEventValidates(t *testing.T) {
	for _, s := range storedEvents {
		if err := s.event.Validate(); err != nil {
			t.Errorf("%s: the sample %#v does not validate: %v", s.wire, s.event, err)
		}
	}
	for wire, mk := range merged() {
		t.Run(wire, func(t *testing.T) {
			b, ok := broken[wire]
			if !ok {
				t.Fatalf("%s has no broken sample here: give it one, and a Validate that refuses it", wire)
			}
			if b.event.EventType() != wire || reflect.TypeOf(b.event) != reflect.TypeOf(reflectValue(mk())) {
				t.Fatalf("the broken sample of %s is a %T (%s)", wire, b.event, b.event.EventType())
			}
			err := b.event.Validate()
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeInvalid {
				t.Fatalf("Validate(%#v) = %v, want a CodeInvalid domain error", b.event, err)
			}
			if len(de.Fields) != 1 || de.Fields[0].Field != b.field || de.Fields[0].Message == "" {
				t.Errorf("Validate(%#v) names %+v, want only %q", b.event, de.Fields, b.field)
			}
		})
	}
}

// reflectValue is the value a registry's factory points to: Decode hands
// out values, not pointers.
func reflectValue(e domain.Event) any { return reflect.ValueOf(e).Elem().Interface() }

// Reading is lenient: an event written before the bounds (the order of
// issue 12, 10,000 units at the largest price) decodes and folds, though
// Validate refuses to write it again.
func TestStoredEventBeyondTheBoundsStillDecodes(t *testing.T) {
	stored := `{"order_id":"o1","user_id":"u1","items":[{"product_id":"p1","sku":"S","name":"N","quantity":10000,"price":1000000000.00}],"total":10000000000000.00}`
	ev, err := merged().Decode("order.created", 1, []byte(stored))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	s := order.Fold([]domain.Recorded{{Event: ev, Version: 0}})
	if s.Total != domain.MaxCents*10_000 || s.Status != order.StatusPending {
		t.Errorf("folded %+v", s)
	}
	if err := ev.Validate(); err == nil {
		t.Error("Validate accepts a line total over MaxCents")
	}
	if _, err := order.DecideCancel(s, ""); err != nil {
		t.Errorf("such an order cannot be cancelled: %v", err)
	}
	if _, err := order.DecidePay(s, "pay_1", s.Total, "4242", ""); !errors.Is(err, &domain.Error{Reason: "order_total_out_of_range"}) {
		t.Errorf("DecidePay on a total over the bound = %v, want order_total_out_of_range", err)
	}
}
