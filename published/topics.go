package published

import (
	"strings"

	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
)

// The topics events are published to, one per aggregate (API.md).
const (
	TopicUsers    = "ecommerce.user.events"
	TopicProducts = "ecommerce.product.events"
	TopicOrders   = "ecommerce.order.events"
)

// Topics returns the event topics: users, products, orders.
func Topics() []string { return []string{TopicUsers, TopicProducts, TopicOrders} }

// routes maps the public streams to their topics. The internal streams
// (user_email-*, product_sku-*, user_admins) match none of these prefixes.
var routes = []struct{ prefix, topic string }{
	{user.StreamPrefix, TopicUsers},
	{product.StreamPrefix, TopicProducts},
	{order.StreamPrefix, TopicOrders},
}

// StreamPrefixes returns the prefixes of the streams whose events are
// published: the user, product and order streams.
func StreamPrefixes() []string {
	out := make([]string, len(routes))
	for i, r := range routes {
		out[i] = r.prefix
	}
	return out
}

// Route returns the topic and the message key (the aggregate id: the
// stream id after its prefix) of an event of stream; ok is false for a
// stream that is not published.
func Route(stream string) (topic, key string, ok bool) {
	for _, r := range routes {
		if id, found := strings.CutPrefix(stream, r.prefix); found {
			return r.topic, id, true
		}
	}
	return "", "", false
}

// Destination returns the topic and the message key of an event of type
// eventType in stream, as Route does; ok is false when the event is not
// published: its stream is not, or it is secret (user.IsSecret).
func Destination(stream, eventType string) (topic, key string, ok bool) {
	topic, key, ok = Route(stream)
	if !ok || user.IsSecret(eventType) {
		return "", "", false
	}
	return topic, key, true
}
