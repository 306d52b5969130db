package smtpsink_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/internal/standins/smtpsink"
)

func TestHandlerListsNewestFirst(t *testing.T) {
	s := start(t, smtpsink.Options{})
	mustSend(t, s, "ada@example.com", "Subject: first\nMessage-ID: <1@example.com>\n"+
		"Date: Mon, 02 Jan 2006 15:04:05 +0000\n\nplain\n")
	mustSend(t, s, "bob@example.com", "Subject: second\nContent-Type: text/html\n\n<script>alert(1)</script>\n")

	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/dev/mail", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if ct, ns := w.Header().Get("Content-Type"), w.Header().Get("X-Content-Type-Options"); ct != "application/json" || ns != "nosniff" {
		t.Errorf("Content-Type %q, X-Content-Type-Options %q", ct, ns)
	}
	if strings.Contains(w.Body.String(), "<script>") {
		t.Errorf("body carries markup unescaped: %s", w.Body)
	}
	var got struct {
		Items []struct {
			ID, From, Subject, Text, HTML string
			To                            []string
			MessageID                     string  `json:"message_id"`
			Date                          *string `json:"date"`
			ReceivedAt                    string  `json:"received_at"`
		} `json:"items"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("decode %s: %v", w.Body, err)
	}
	if len(got.Items) != 2 {
		t.Fatalf("%d items, want 2", len(got.Items))
	}
	second, first := got.Items[0], got.Items[1]
	if second.ID != "2" || second.Subject != "second" || second.HTML != "<script>alert(1)</script>\n" ||
		second.To[0] != "bob@example.com" || second.Date != nil {
		t.Errorf("newest item = %+v", second)
	}
	if first.ID != "1" || first.Text != "plain\n" || first.MessageID != "1@example.com" ||
		first.From != "shop@example.com" || first.Date == nil || *first.Date != "2006-01-02T15:04:05Z" ||
		first.ReceivedAt == "" {
		t.Errorf("oldest item = %+v", first)
	}
}

func TestHandlerIsReadOnly(t *testing.T) {
	s := start(t, smtpsink.Options{})
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodDelete, "/", nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" ||
		w.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("DELETE: %d, Allow %q, Content-Type %q", w.Code, w.Header().Get("Allow"), w.Header().Get("Content-Type"))
	}
}

func TestHandlerEmptyListIsArray(t *testing.T) {
	s := start(t, smtpsink.Options{})
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if got := strings.TrimSpace(w.Body.String()); got != `{"items":[]}` {
		t.Errorf("empty sink body = %s", got)
	}
}
