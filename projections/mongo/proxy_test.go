package mongo_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/eventshop/eventshop/internal/standins/ferret"
	"github.com/eventshop/eventshop/internal/testsupport/mongotest"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// server is a database for the tests that need clients of their own on
// it (another process's, one with a command monitor, one behind a proxy),
// which mongotest.NewDatabase does not give: it returns the server's
// options and the database's name. As with mongotest, it is a database of
// its own on the server MONGO_TEST_URL names, or else an embedded FerretDB.
func server(t *testing.T) (*options.ClientOptions, string) {
	t.Helper()
	if uri := mongotest.URL(); uri != "" {
		name := mongotest.Prefix + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
		db := connect(t, options.Client().ApplyURI(uri)).Database(name)
		t.Cleanup(func() {
			if err := db.Drop(context.Background()); err != nil {
				t.Errorf("drop database %s: %v", name, err)
			}
		})
		return options.Client().ApplyURI(uri), name
	}
	srv, err := ferret.Start(ctxT(t), ferret.Options{Addr: "127.0.0.1:0", PostgreSQLURL: pgtest.NewDatabase(t), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return options.Client().ApplyURI(srv.URI()), "eventshop"
}

// connect returns a client connected with opts, disconnected when t ends.
func connect(t *testing.T, opts *options.ClientOptions) *mongo.Client {
	t.Helper()
	client, err := mongo.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	if err := client.Ping(ctxT(t), readpref.Primary()); err != nil {
		t.Fatal(err)
	}
	return client
}

// proxy forwards TCP connections to a server, and can hold back the
// server's answers: a MongoDB that has become slow. The requests still
// reach the server, and are carried out there.
type proxy struct {
	ln       net.Listener
	upstream string

	mu      sync.Mutex
	stalled chan struct{} // closed when answers flow again; nil: flowing
	// held receives a value each time an answer arrives while stalled.
	held chan struct{}
}

// newProxy forwards to the (first) server of opts, and returns the
// options of a client that goes through it: one connection to it, no
// discovery of other servers, and no heartbeat while a test runs.
func newProxy(t *testing.T, opts *options.ClientOptions) (*proxy, *options.ClientOptions) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: opts.Hosts[0], held: make(chan struct{}, 64)}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.flow()
		conns.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { p.serve(c) })
		}
	}()
	through := *opts
	through.SetHosts([]string{ln.Addr().String()}).SetDirect(true).
		SetHeartbeatInterval(time.Hour).SetServerMonitoringMode(options.ServerMonitoringModePoll)
	return p, &through
}

// stall holds back the server's answers until flow.
func (p *proxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled == nil {
		p.stalled = make(chan struct{})
	}
}

// flow lets the answers through again, those held first.
func (p *proxy) flow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled != nil {
		close(p.stalled)
		p.stalled = nil
	}
}

// awaitHeld waits until the server answered something that is held back.
func (p *proxy) awaitHeld(t *testing.T) {
	t.Helper()
	select {
	case <-p.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the server answered nothing within 10s")
	}
}

func (p *proxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		_, _ = io.Copy(server, client)
		server.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			p.mu.Lock()
			stalled := p.stalled
			p.mu.Unlock()
			if stalled != nil {
				select {
				case p.held <- struct{}{}:
				default:
				}
				<-stalled
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				client.Close()
			}
			return
		}
	}
}
