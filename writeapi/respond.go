package writeapi

import (
	"net/http"
	"strconv"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/internal/edge"
)

// actor is the signed-in caller as the commands take it.
func actor(r *http.Request) commands.Actor {
	a, _ := edge.ActorFrom(r.Context())
	return commands.Actor{ID: a.ID, Roles: a.Roles}
}

// ifMatch reads If-Match as the commands take it: commands.NoVersion when
// the client sent none (or *).
func ifMatch(r *http.Request) (int64, error) {
	v, ok, err := edge.IfMatch(r)
	if !ok {
		return commands.NoVersion, err
	}
	return v, nil
}

// writeResult answers a successful command with its state, position and
// version.
func writeResult(w http.ResponseWriter, status int, res commands.Result, v any) {
	w.Header().Set("X-Event-Position", res.Position.String())
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(res.Version, 10)))
	edge.WriteJSON(w, status, v)
}
