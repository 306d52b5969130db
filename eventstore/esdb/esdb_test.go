package esdb_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/esdb"
	"github.com/eventshop/eventshop/eventstore/eventstoretest"
	"github.com/eventshop/eventshop/internal/testsupport/esdbtest"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
)

// url is the node the tests run against: a real one when EVENTSTORE_URL
// names one, the in-process stand-in otherwise.
func url(t *testing.T) string {
	if u := os.Getenv("EVENTSTORE_URL"); strings.HasPrefix(u, "esdb://") || strings.HasPrefix(u, "esdb+discover://") {
		return u
	}
	return esdbtest.Start(t).URL()
}

func open(t *testing.T, url string) *esdb.Store {
	t.Helper()
	s, err := esdb.Open(context.Background(), url, esdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	s := open(t, url(t))
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store { return s })
}

// TestSystemEventsHidden: the node's own records, which open its log, are
// never returned.
func TestSystemEventsHidden(t *testing.T) {
	s := open(t, url(t))
	p := eventstoretest.Prefix(t)
	eventstoretest.MustAppend(t, s, p+"a", eventstore.NoStream, eventstoretest.Ev("x.a", 1))
	page, err := s.ReadAll(eventstoretest.Ctx(t), eventstore.Start, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 1 || strings.HasPrefix(page[0].StreamID, "$") || strings.HasPrefix(page[0].Type, "$") {
		t.Fatalf("first page of the log: %+v, want one user event", page)
	}
	sub, err := s.SubscribeAll(eventstoretest.Ctx(t), eventstore.Start, eventstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if e := eventstoretest.Collect(t, sub, 1, 30*time.Second)[0]; strings.HasPrefix(e.StreamID, "$") || strings.HasPrefix(e.Type, "$") {
		t.Fatalf("subscription delivered system event %s on %s", e.Type, e.StreamID)
	}
}

// TestSubscriptionEndsWhenNodeGoes: a subscription whose node goes away
// ends with an error, so that its owner can report it and start again.
func TestSubscriptionEndsWhenNodeGoes(t *testing.T) {
	node := esdbtest.Start(t)
	s := open(t, node.URL())
	p := eventstoretest.Prefix(t)
	eventstoretest.MustAppend(t, s, p+"a", eventstore.NoStream, eventstoretest.Ev("x.a", 1))
	sub, err := s.SubscribeAll(eventstoretest.Ctx(t), eventstore.Start, eventstore.Filter{StreamPrefixes: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	eventstoretest.Collect(t, sub, 1, 30*time.Second)
	node.Stop()
	select {
	case <-sub.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("subscription still running 30s after its node went away")
	}
	if sub.Err() == nil {
		t.Fatal("subscription ended without an error although its node went away")
	}
}

func TestOpenFailsWithoutNode(t *testing.T) {
	node := esdbtest.Start(t)
	node.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if s, err := esdb.Open(ctx, node.URL(), esdb.Options{}); err == nil {
		s.Close()
		t.Fatal("Open succeeded without a node to talk to")
	}
	if _, err := esdb.Open(ctx, "esdb://", esdb.Options{}); err == nil {
		t.Fatal("Open accepted an empty connection string")
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	s, err := esdb.Open(context.Background(), url(t), esdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eventstoretest.ClosingEndsSubscriptions(t, s, s.Close)
}

// TestPasswordNotInErrors: a connection string the client rejects is not
// quoted back with its password, and what is wrong is still said.
func TestPasswordNotInErrors(t *testing.T) {
	for raw, says := range map[string]string{
		"esdb://admin:s3cr3t-pw@localhost:notaport?tls=false": "not a valid URL",
		"esdb://admin:my s3cr3t-pw@node:2113":                 "not a valid URL",
		`esdb://admin:my"s3cr3t-pw@node:2113`:                 "not a valid URL",
		"esdb://admin:p@s3cr3t-pw@node:bad":                   "not a valid URL",
		"esdb://admin:s3cr3t-pw@node:2113?tls=maybe":          "tls",
	} {
		_, err := esdb.Open(context.Background(), raw, esdb.Options{})
		if err == nil || strings.Contains(err.Error(), "s3cr3t-pw") || !strings.Contains(err.Error(), says) {
			t.Errorf("Open(%q): %v; want an error that says %q without the password", raw, err, says)
		}
	}
}

// TestRetryAnsweredWithCurrentRevision: a node that answers a recognised
// retry with the stream's current revision still gets the retry's own
// result from the adapter.
func TestRetryAnsweredWithCurrentRevision(t *testing.T) {
	node := esdbtest.Start(t)
	node.AnswerRetriesWithCurrentRevision()
	s := open(t, node.URL())
	stream := eventstoretest.Prefix(t) + "r"
	batch := []eventstore.EventData{eventstoretest.Ev("x.a", 1), eventstoretest.Ev("x.b", 2)}
	first := eventstoretest.MustAppend(t, s, stream, eventstore.NoStream, batch...)
	eventstoretest.MustAppend(t, s, stream, eventstore.Exact(1), eventstoretest.Ev("x.c", 3))
	again := eventstoretest.MustAppend(t, s, stream, eventstore.NoStream, batch...)
	if again != first {
		t.Fatalf("retry after the stream moved on: %+v, want the first result %+v", again, first)
	}
	if got := eventstoretest.ReadStreamAll(t, s, stream); len(got) != 3 {
		t.Fatalf("stream has %d events, want 3", len(got))
	}
}

// TestStoreOutlivesALongOutage: once the node has been gone long enough
// for the client to give up looking for it (after about a second it
// closes itself for good, and every call answers "connection is closed"),
// the store still comes back when the node does.
func TestStoreOutlivesALongOutage(t *testing.T) {
	node := esdbtest.Start(t)
	s := open(t, node.URL())
	p := eventstoretest.Prefix(t)
	eventstoretest.MustAppend(t, s, p+"a", eventstore.NoStream, eventstoretest.Ev("x.a", 1))
	try := func(call func(context.Context) error) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return call(ctx)
	}
	appendOne := func(ctx context.Context) error {
		_, err := s.Append(ctx, p+"b", eventstore.Any, eventstoretest.Ev("x.b", 1))
		return err
	}
	node.Stop()
	// An append's failure makes the client look for the node again.
	testwait.Until(t, 60*time.Second, func() string {
		if err := try(appendOne); err == nil || !strings.Contains(err.Error(), "connection is closed") {
			return fmt.Sprintf("the client has not given up on the node yet: %v", err)
		}
		return ""
	})
	node.Resume(t)
	testwait.Until(t, 60*time.Second, func() string {
		if err := try(appendOne); err != nil {
			return fmt.Sprintf("the node is back, the store is not: %v", err)
		}
		return ""
	})
	if err := try(s.Ping); err != nil {
		t.Fatalf("ping after the outage: %v", err)
	}
}
