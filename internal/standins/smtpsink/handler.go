package smtpsink

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/eventshop/eventshop/internal/edge/problem"
)

// item is one message in the JSON list served by Handler.
type item struct {
	ID         string     `json:"id"`
	From       string     `json:"from"`
	To         []string   `json:"to"`
	Subject    string     `json:"subject"`
	MessageID  string     `json:"message_id"`
	Date       *time.Time `json:"date"` // null when the message had no valid Date
	ReceivedAt time.Time  `json:"received_at"`
	Text       string     `json:"text"`
	HTML       string     `json:"html"`
}

// Handler returns an http.Handler that answers GET (and HEAD) on any path
// with the kept messages, newest first, as
//
//	{"items": [{"id", "from", "to", "subject", "message_id", "date",
//	            "received_at", "text", "html"}]}
//
// and any other method with a 405 problem. It does no authentication: mount
// it only in the local run. The HTML bodies are JSON strings, never markup
// the page itself renders, and the response is marked nosniff so a browser
// cannot be talked into reading it as HTML.
func (s *Sink) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			problem.Write(w, problem.New(http.StatusMethodNotAllowed, "the captured mail is read-only"))
			return
		}
		msgs := s.Messages()
		items := make([]item, 0, len(msgs))
		for i := len(msgs) - 1; i >= 0; i-- {
			m := msgs[i]
			it := item{
				ID: m.ID, From: m.From, To: m.To, Subject: m.Subject, MessageID: m.MessageID,
				ReceivedAt: m.ReceivedAt, Text: m.TextBody, HTML: m.HTMLBody,
			}
			if !m.Date.IsZero() {
				it.Date = &m.Date
			}
			items = append(items, it)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		// A failed write means the client went away; there is no one
		// left to tell.
		_ = json.NewEncoder(w).Encode(struct {
			Items []item `json:"items"`
		}{items})
	})
}
