package writeapi

import "net/http"

// DecodeJSON is the write API's strict body decoding for other packages'
// routes with a body (the read API's admin actions), so that every route
// of the binary reads JSON one way: one object, unknown fields refused.
// Its errors are answered by WriteError (400, 413, 415 or 422).
func DecodeJSON(r *http.Request, v any) error { return decode(r, v) }
