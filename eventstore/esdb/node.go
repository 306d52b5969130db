package esdb

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"
)

// node holds the client of the node or cluster, and replaces it once it
// has given up.
//
// The v4 client looks for the node (discovery) when it first needs a
// connection and after it lost one. When a discovery fails
// (MaxDiscoverAttempts tries, DiscoveryInterval apart: about a second by
// default), the client closes itself for good: every later call answers
// "connection is closed", so an outage longer than that left the process
// without its event store until it was restarted. Worse, a call that
// raced that moment waits, without watching its context, on the client's
// loop that has ended, and closing the client then makes that call panic.
// So each call runs apart from its caller (see call), a client that closed
// itself is replaced for the next call, and one is never closed but at
// the end.
type node struct {
	cfg *client.Configuration
	log *slog.Logger

	mu     sync.Mutex
	c      *client.Client
	closed bool
	calls  sync.WaitGroup // calls in flight, which close waits for
}

// closeWait bounds how long close waits for the calls in flight: one stuck
// in the client for good (see node) must not hold the store's Close.
const closeWait = 5 * time.Second

func newNode(cfg *client.Configuration, log *slog.Logger) (*node, error) {
	c, err := client.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	return &node{cfg: cfg, log: log, c: c}, nil
}

// begin is the client a call uses now; the call counts as in flight
// until it calls n.calls.Done.
func (n *node) begin() (*client.Client, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("eventstoredb: the store is closed")
	}
	n.calls.Add(1)
	return n.c, nil
}

// renew replaces c, when it is still the current client, by a new one,
// which looks for the node again on its first call. c is left as it is
// (see node).
func (n *node) renew(c *client.Client) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.c != c {
		return
	}
	fresh, err := client.NewClient(n.cfg)
	if err != nil { // the configuration was valid once; it is still
		n.log.Error("eventstoredb: a new client", "err", err)
		return
	}
	n.c = fresh
	n.log.Warn("eventstoredb: the client gave up looking for the node; a new one looks again")
}

// close closes the current client, once the calls in flight are done (at
// most closeWait): the client's Close is not safe against a call still
// using it, which a call whose caller has gone may be. Calls after it fail.
func (n *node) close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	c := n.c
	n.mu.Unlock()
	done := make(chan struct{})
	go func() {
		n.calls.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeWait):
		n.log.Warn("eventstoredb: closing the client with a call still in it", "waited", closeWait)
	}
	c.Close()
}

// call runs fn with the current client and returns what fn returns, or
// ctx's error as soon as ctx ends: fn may be stuck in the client, which
// does not always watch the context (see node), so fn must do all its
// work with the client, a read to its end included: a failed Recv reports
// to the client's loop too. A subscription that comes after its caller has
// gone is closed. A panic of fn (a call caught in a client being closed)
// is an error. When fn finds the client closed by itself, the next call
// gets a new one.
func call[T any](ctx context.Context, n *node, fn func(*client.Client) (T, error)) (T, error) {
	var zero T
	c, err := n.begin()
	if err != nil {
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	done, gone := make(chan result), make(chan struct{})
	go func() {
		defer n.calls.Done()
		var r result
		func() {
			defer func() {
				if p := recover(); p != nil {
					r = result{err: fmt.Errorf("eventstoredb client: %v", p)}
				}
			}()
			r.v, r.err = fn(c)
		}()
		select {
		case done <- r:
		case <-gone:
			if r.err == nil {
				closeResult(r.v)
			}
		}
	}()
	select {
	case r := <-done:
		if code(r.err) == client.ErrorCodeConnectionClosed {
			n.renew(c)
		}
		return r.v, r.err
	case <-ctx.Done():
		close(gone)
		return zero, ctx.Err()
	}
}

// closeResult closes v when it is a subscription.
func closeResult(v any) {
	if sub, ok := v.(interface{ Close() error }); ok {
		_ = sub.Close()
	}
}
