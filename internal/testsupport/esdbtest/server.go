// Package esdbtest is a stand-in EventStoreDB node for tests: a gRPC server
// that speaks the Streams service of EventStoreDB's client protocol
// (Append, and Read including $all subscriptions with filters) over an
// in-memory log, using the server stubs the official client module
// exports. The official Go client works against it unchanged.
//
// It is test code, not a product: nothing is persisted, there is no
// authentication, no TLS, no clustering, and only the behaviour eventshop's
// adapter relies on is modelled. Where a real server is at hand, set
// EVENTSTORE_URL=esdb://… and the adapter's tests run against it instead.
package esdbtest

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	pb "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventshop/eventshop/eventstore"
)

// record is one event of the log, as a node stores it.
type record struct {
	id       uuid.UUID
	stream   string
	revision uint64
	metadata map[string]string // type, content-type, created
	custom   []byte
	data     []byte
	// A record's prepare position is where it lies in the log; its commit
	// position is where its write committed, shared by a write's records.
	commit, prepare uint64
}

// Server is the stand-in node. Start it with Start.
type Server struct {
	pb.UnimplementedStreamsServer

	retryAnswersCurrent bool // see AnswerRetriesWithCurrentRevision

	mu      sync.Mutex
	log     []*record
	streams map[string][]*record
	byID    map[uuid.UUID]*record // the node's idempotency cache, never evicted here
	next    uint64                // log position of the next record
	wake    *eventstore.Waker

	grpc *grpc.Server
	addr string
}

// Start serves a new node on a free loopback port until tb ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("esdbtest: listen: %v", err)
	}
	s := &Server{
		streams: map[string][]*record{},
		byID:    map[uuid.UUID]*record{},
		wake:    eventstore.NewWaker(),
		grpc:    grpc.NewServer(),
		addr:    ln.Addr().String(),
	}
	// A real node's log opens with system records; so does this one's, so
	// that clients meet $-streams in $all as they would in production.
	s.write("$epochs", []*pb.AppendReq_ProposedMessage{{
		Id:       protoUUID(uuid.New(), false),
		Metadata: map[string]string{"type": "$epoch-information", "content-type": "application/json"},
		Data:     []byte(`{}`),
	}})
	pb.RegisterStreamsServer(s.grpc, s)
	go s.grpc.Serve(ln) //nolint:errcheck // Serve returns when Stop is called
	tb.Cleanup(s.Stop)
	return s
}

// AnswerRetriesWithCurrentRevision makes a recognised retry answer with
// the stream's current revision instead of the retried batch's last one,
// as some server versions may; the adapter must cope with either.
func (s *Server) AnswerRetriesWithCurrentRevision() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryAnswersCurrent = true
}

// URL is the connection string of the node for the official client.
func (s *Server) URL() string { return "esdb://" + s.addr + "?tls=false" }

// Stop closes the listener and every call in flight, subscriptions included.
func (s *Server) Stop() {
	s.mu.Lock()
	g := s.grpc
	s.mu.Unlock()
	g.Stop()
}

// Resume serves the node again, with its log, on the address it had, after
// Stop: the node came back. It fails tb when the address is taken.
func (s *Server) Resume(tb testing.TB) {
	tb.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		tb.Fatalf("esdbtest: listen again on %s: %v", s.addr, err)
	}
	g := grpc.NewServer()
	pb.RegisterStreamsServer(g, s)
	s.mu.Lock()
	s.grpc = g
	s.mu.Unlock()
	go g.Serve(ln) //nolint:errcheck // Serve returns when Stop is called
}

// Append implements the Streams service's Append: an options message,
// then the proposed events, answered with success or wrong expected version.
func (s *Server) Append(call pb.Streams_AppendServer) error {
	first, err := call.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil || opts.GetStreamIdentifier() == nil {
		return status.Error(codes.InvalidArgument, "the first append message must carry the options")
	}
	var msgs []*pb.AppendReq_ProposedMessage
	for {
		req, err := call.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		m := req.GetProposedMessage()
		if m == nil || m.Metadata["type"] == "" || m.Metadata["content-type"] == "" {
			return status.Error(codes.InvalidArgument, "a proposed message needs an id, a type and a content type")
		}
		msgs = append(msgs, m)
	}
	stream := string(opts.GetStreamIdentifier().GetStreamName())
	s.mu.Lock()
	resp := s.decide(stream, opts, msgs)
	s.mu.Unlock()
	return call.SendAndClose(resp)
}

// decide applies the node's rules for an append: an expected revision the
// stream is past succeeds without writing when the events there carry the
// same ids (a retry), as does Any when the cache knows the ids; otherwise
// the expectation must hold.
func (s *Server) decide(stream string, opts *pb.AppendReq_Options, msgs []*pb.AppendReq_ProposedMessage) *pb.AppendResp {
	recs := s.streams[stream]
	current := int64(len(recs)) - 1
	ids := make([]uuid.UUID, len(msgs))
	for i, m := range msgs {
		ids[i] = fromProtoUUID(m.GetId())
	}
	var expected int64 // -2 any, -1 no stream, -4 stream exists, n exact
	switch e := opts.GetExpectedStreamRevision().(type) {
	case *pb.AppendReq_Options_Any:
		expected = -2
	case *pb.AppendReq_Options_NoStream:
		expected = -1
	case *pb.AppendReq_Options_StreamExists:
		expected = -4
	case *pb.AppendReq_Options_Revision:
		expected = int64(e.Revision)
	}
	switch {
	case len(msgs) == 0:
		return success(current, nil)
	case expected == -2 || (expected == -4 && current >= 0):
		if r, ok := s.byID[ids[0]]; ok && r.stream == stream {
			if last, ok := matches(recs, int64(r.revision), ids); ok {
				return s.retried(last, current)
			}
			return wrongVersion(current, expected)
		}
	case expected >= -1 && current > expected:
		if last, ok := matches(recs, expected+1, ids); ok {
			return s.retried(last, current)
		}
		return wrongVersion(current, expected)
	case expected != current:
		return wrongVersion(current, expected)
	}
	last := s.write(stream, msgs)
	return success(int64(last.revision), last)
}

// retried answers a recognised retry whose batch ends at last.
func (s *Server) retried(last *record, current int64) *pb.AppendResp {
	if s.retryAnswersCurrent {
		return success(current, nil)
	}
	return success(int64(last.revision), nil)
}

// matches reports whether recs from revision from on carry ids, and the last of them.
func matches(recs []*record, from int64, ids []uuid.UUID) (*record, bool) {
	if from < 0 || from+int64(len(ids)) > int64(len(recs)) {
		return nil, false
	}
	for i, id := range ids {
		if recs[from+int64(i)].id != id {
			return nil, false
		}
	}
	return recs[from+int64(len(ids))-1], true
}

// write appends msgs to stream; the caller holds s.mu or has not started serving.
func (s *Server) write(stream string, msgs []*pb.AppendReq_ProposedMessage) *record {
	created := strconv.FormatInt(time.Now().UnixNano()/100, 10) // .NET ticks since the Unix epoch
	recs := make([]*record, len(msgs))
	for i, m := range msgs {
		md := map[string]string{"created": created}
		for k, v := range m.Metadata {
			md[k] = v
		}
		recs[i] = &record{
			id: fromProtoUUID(m.GetId()), stream: stream, revision: uint64(len(s.streams[stream])),
			metadata: md, custom: m.CustomMetadata, data: m.Data, prepare: s.next,
		}
		// Positions are byte offsets in a real node's log: ordered, not dense.
		s.next += uint64(128 + len(m.Data) + len(m.CustomMetadata))
		s.log = append(s.log, recs[i])
		s.streams[stream] = append(s.streams[stream], recs[i])
		s.byID[recs[i].id] = recs[i]
	}
	last := recs[len(recs)-1]
	for _, r := range recs {
		r.commit = last.prepare
	}
	s.wake.Wake()
	return last
}

func success(current int64, last *record) *pb.AppendResp {
	ok := &pb.AppendResp_Success{}
	if current < 0 {
		ok.CurrentRevisionOption = &pb.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
	} else {
		ok.CurrentRevisionOption = &pb.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(current)}
	}
	if last == nil {
		// A retry that wrote nothing reports no position, as real nodes may.
		ok.PositionOption = &pb.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
	} else {
		ok.PositionOption = &pb.AppendResp_Success_Position{Position: &pb.AppendResp_Position{CommitPosition: last.commit, PreparePosition: last.prepare}}
	}
	return &pb.AppendResp{Result: &pb.AppendResp_Success_{Success: ok}}
}

func wrongVersion(current, expected int64) *pb.AppendResp {
	w := &pb.AppendResp_WrongExpectedVersion{}
	if current < 0 {
		w.CurrentRevisionOption = &pb.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
	} else {
		w.CurrentRevisionOption = &pb.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(current)}
	}
	switch expected {
	case -2:
		w.ExpectedRevisionOption = &pb.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
	case -1:
		w.ExpectedRevisionOption = &pb.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
	case -4:
		w.ExpectedRevisionOption = &pb.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
	default:
		w.ExpectedRevisionOption = &pb.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: uint64(expected)}
	}
	return &pb.AppendResp{Result: &pb.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}}
}

func protoUUID(id uuid.UUID, asString bool) *shared.UUID {
	if asString {
		return &shared.UUID{Value: &shared.UUID_String_{String_: id.String()}}
	}
	var most, least int64
	for i := range 8 {
		most = most<<8 | int64(id[i])
		least = least<<8 | int64(id[8+i])
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits: most, LeastSignificantBits: least,
	}}}
}

func fromProtoUUID(u *shared.UUID) uuid.UUID {
	if st := u.GetStructured(); st != nil {
		var id uuid.UUID
		most, least := uint64(st.GetMostSignificantBits()), uint64(st.GetLeastSignificantBits())
		for i := range 8 {
			id[7-i] = byte(most >> (8 * i))
			id[15-i] = byte(least >> (8 * i))
		}
		return id
	}
	id, err := uuid.Parse(u.GetString_())
	if err != nil {
		return uuid.Nil
	}
	return id
}
