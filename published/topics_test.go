package published_test

import (
	"testing"

	"github.com/eventshop/eventshop/published"
)

func TestRoute(t *testing.T) {
	for stream, want := range map[string][2]string{
		"user-u1":         {"ecommerce.user.events", "u1"},
		"product-p1":      {"ecommerce.product.events", "p1"},
		"order-o-1":       {"ecommerce.order.events", "o-1"},
		"user_email-abc":  {},
		"product_sku-abc": {},
		"user_admins":     {},
		"orders-x":        {},
	} {
		topic, key, ok := published.Route(stream)
		if ok != (want[0] != "") || topic != want[0] || key != want[1] {
			t.Errorf("Route(%s) = %s, %s, %v; want %v", stream, topic, key, ok, want)
		}
	}
}

func TestDestinationLeavesSecretEventsOut(t *testing.T) {
	if topic, key, ok := published.Destination("user-u1", "user.registered"); !ok || topic != published.TopicUsers || key != "u1" {
		t.Errorf("Destination(user-u1, user.registered) = %s, %s, %v; want the users topic, u1", topic, key, ok)
	}
	if _, _, ok := published.Destination("user-u1", "user.credentials_set"); ok {
		t.Error("a user.credentials_set event would be published")
	}
	if _, _, ok := published.Destination("user_email-abc", "unique.claimed"); ok {
		t.Error("an event of an internal stream would be published")
	}
}

func TestStreamPrefixesAreTheRoutedStreams(t *testing.T) {
	prefixes := published.StreamPrefixes()
	if len(prefixes) != len(published.Topics()) {
		t.Fatalf("StreamPrefixes() = %v, want one per topic", prefixes)
	}
	for _, p := range prefixes {
		if _, _, ok := published.Route(p + "x"); !ok {
			t.Errorf("Route(%sx) is not published", p)
		}
	}
}
