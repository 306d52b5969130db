// Package docs holds eventshop's machine-readable integration documents:
// asyncapi.yaml, the AsyncAPI 3.0 description of the Kafka topics the
// publisher (projections/kafka) writes. Its tests check the document
// against the code, so an event type or a data field added to the domain
// fails them until it is documented.
package docs
