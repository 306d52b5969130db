// Package docs holds eventshop's machine-readable integration documents,
// each held to the code by tests:
//
//   - asyncapi.yaml, the AsyncAPI 3.0 description of the Kafka topics the
//     publisher (projections/kafka) writes, to the contract of package
//     published. Its tests check the document against that package and
//     the domain, so an event type or a data field added to the domain
//     fails them until it is documented.
//   - openapi.yaml, the OpenAPI 3.1 description of every HTTP route the
//     binary serves. Its tests check that it is a valid OpenAPI 3.1
//     document whose references all resolve and whose examples match their
//     schemas, and that the routes it documents are exactly the routes the
//     write and read APIs mount (with those cmd/eventshop mounts itself).
//     The end-to-end tests of cmd/eventshop validate every request and
//     answer they exchange with the real program against it.
//
// Routes serves the OpenAPI document as GET /openapi.json and an
// interactive reference of it (Swagger UI, vendored under reference/ and
// embedded in the binary) as GET /docs.
package docs
