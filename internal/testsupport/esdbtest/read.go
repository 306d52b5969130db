package esdbtest

import (
	"regexp"
	"sort"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	pb "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Read implements the Streams service's Read: a stream or $all, forwards
// or backwards, a count or (on $all) a catch-up subscription, with an
// optional filter on $all. As on a real node, reading $all forwards from a
// position includes the event at that position; subscribing from a
// position starts after it.
func (s *Server) Read(req *pb.ReadReq, call pb.Streams_ReadServer) error {
	o := req.GetOptions()
	if o == nil {
		return status.Error(codes.InvalidArgument, "read without options")
	}
	asString := o.GetUuidOption().GetString_() != nil
	match, err := filterFunc(o.GetFilter())
	if err != nil {
		return err
	}
	if o.GetSubscription() != nil {
		if o.GetAll() == nil {
			return status.Error(codes.Unimplemented, "the stand-in subscribes to $all only")
		}
		return s.subscribe(call, o.GetAll(), match, o.GetFilter() != nil, asString)
	}
	backwards := o.GetReadDirection() == pb.ReadReq_Options_Backwards
	count := o.GetCount()
	s.mu.Lock()
	var recs []*record
	if so := o.GetStream(); so != nil {
		recs = s.streams[string(so.GetStreamIdentifier().GetStreamName())]
		if len(recs) == 0 {
			s.mu.Unlock()
			return call.Send(&pb.ReadResp{Content: &pb.ReadResp_StreamNotFound_{
				StreamNotFound: &pb.ReadResp_StreamNotFound{StreamIdentifier: so.GetStreamIdentifier()},
			}})
		}
		recs = readStream(recs, so, backwards, count)
	} else {
		recs = s.readAll(o.GetAll(), backwards, count, match)
	}
	s.mu.Unlock()
	for _, r := range recs {
		if err := call.Send(eventResp(r, asString, o.GetAll() != nil)); err != nil {
			return err
		}
	}
	return nil
}

func readStream(recs []*record, so *pb.ReadReq_Options_StreamOptions, backwards bool, count uint64) []*record {
	n := int64(len(recs))
	var out []*record
	if !backwards {
		from := int64(0)
		switch v := so.GetRevisionOption().(type) {
		case *pb.ReadReq_Options_StreamOptions_Revision:
			from = int64(min(v.Revision, uint64(n)))
		case *pb.ReadReq_Options_StreamOptions_End:
			from = n
		}
		for i := from; i < n && uint64(len(out)) < count; i++ {
			out = append(out, recs[i])
		}
		return out
	}
	from := n - 1
	switch v := so.GetRevisionOption().(type) {
	case *pb.ReadReq_Options_StreamOptions_Revision:
		from = int64(min(v.Revision, uint64(n-1)))
	case *pb.ReadReq_Options_StreamOptions_Start:
		from = 0
	}
	for i := from; i >= 0 && uint64(len(out)) < count; i-- {
		out = append(out, recs[i])
	}
	return out
}

// readAll reads the log; the caller holds s.mu.
func (s *Server) readAll(ao *pb.ReadReq_Options_AllOptions, backwards bool, count uint64, match func(*record) bool) []*record {
	var out []*record
	if !backwards {
		from := 0
		switch v := ao.GetAllOption().(type) {
		case *pb.ReadReq_Options_AllOptions_Position:
			from = s.index(v.Position, false)
		case *pb.ReadReq_Options_AllOptions_End:
			from = len(s.log)
		}
		for i := from; i < len(s.log) && uint64(len(out)) < count; i++ {
			if match(s.log[i]) {
				out = append(out, s.log[i])
			}
		}
		return out
	}
	from := len(s.log) - 1
	switch v := ao.GetAllOption().(type) {
	case *pb.ReadReq_Options_AllOptions_Position:
		from = s.index(v.Position, false) - 1
	case *pb.ReadReq_Options_AllOptions_Start:
		from = -1
	}
	for i := from; i >= 0 && uint64(len(out)) < count; i-- {
		if match(s.log[i]) {
			out = append(out, s.log[i])
		}
	}
	return out
}

// index is the first log index whose position is at least (commit,
// prepare), or after it when exclusive; the caller holds s.mu.
func (s *Server) index(pos *pb.ReadReq_Options_Position, exclusive bool) int {
	return sort.Search(len(s.log), func(i int) bool {
		r := s.log[i]
		if r.commit != pos.GetCommitPosition() {
			return r.commit > pos.GetCommitPosition()
		}
		if exclusive {
			return r.prepare > pos.GetPreparePosition()
		}
		return r.prepare >= pos.GetPreparePosition()
	})
}

// subscribe sends the log after the start point, then live records as they
// are written, until the call ends. Catch-up and live are the same loop over
// the same index, so nothing is skipped or sent twice at the handoff.
func (s *Server) subscribe(call pb.Streams_ReadServer, ao *pb.ReadReq_Options_AllOptions, match func(*record) bool, filtered, asString bool) error {
	err := call.Send(&pb.ReadResp{Content: &pb.ReadResp_Confirmation{
		Confirmation: &pb.ReadResp_SubscriptionConfirmation{SubscriptionId: "esdbtest-" + uuid.NewString()},
	}})
	if err != nil {
		return err
	}
	s.mu.Lock()
	next := 0
	switch v := ao.GetAllOption().(type) {
	case *pb.ReadReq_Options_AllOptions_Position:
		next = s.index(v.Position, true)
	case *pb.ReadReq_Options_AllOptions_End:
		next = len(s.log)
	}
	s.mu.Unlock()
	caughtUp := false
	for {
		s.mu.Lock()
		woken := s.wake.C()
		batch := s.log[next:len(s.log):len(s.log)]
		s.mu.Unlock()
		for _, r := range batch {
			if match(r) {
				if err := call.Send(eventResp(r, asString, true)); err != nil {
					return err
				}
			}
		}
		next += len(batch)
		if filtered && len(batch) > 0 {
			// Filtered subscriptions tell the client how far the server
			// has searched, matching or not.
			last := batch[len(batch)-1]
			err := call.Send(&pb.ReadResp{Content: &pb.ReadResp_Checkpoint_{
				Checkpoint: &pb.ReadResp_Checkpoint{CommitPosition: last.commit, PreparePosition: last.prepare},
			}})
			if err != nil {
				return err
			}
		}
		if !caughtUp {
			caughtUp = true
			if err := call.Send(&pb.ReadResp{Content: &pb.ReadResp_CaughtUp_{CaughtUp: &pb.ReadResp_CaughtUp{}}}); err != nil {
				return err
			}
		}
		select {
		case <-call.Context().Done():
			return status.FromContextError(call.Context().Err()).Err()
		case <-woken:
		}
	}
}

// filterFunc turns a read's filter into a predicate on records.
func filterFunc(f *pb.ReadReq_Options_FilterOptions) (func(*record) bool, error) {
	if f == nil {
		return func(*record) bool { return true }, nil
	}
	expr, subject := f.GetStreamIdentifier(), func(r *record) string { return r.stream }
	if expr == nil {
		expr, subject = f.GetEventType(), func(r *record) string { return r.metadata["type"] }
	}
	if expr == nil {
		return nil, status.Error(codes.InvalidArgument, "filter without an expression")
	}
	var re *regexp.Regexp
	if expr.GetRegex() != "" {
		var err error
		if re, err = regexp.Compile(expr.GetRegex()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "filter regex: %v", err)
		}
	}
	prefixes := expr.GetPrefix()
	return func(r *record) bool {
		v := subject(r)
		if re != nil {
			return re.MatchString(v)
		}
		for _, p := range prefixes {
			if strings.HasPrefix(v, p) {
				return true
			}
		}
		return false
	}, nil
}

func eventResp(r *record, asString, withCommit bool) *pb.ReadResp {
	ev := &pb.ReadResp_ReadEvent{Event: &pb.ReadResp_ReadEvent_RecordedEvent{
		Id:               protoUUID(r.id, asString),
		StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
		StreamRevision:   r.revision,
		PreparePosition:  r.prepare,
		CommitPosition:   r.commit,
		Metadata:         r.metadata,
		CustomMetadata:   r.custom,
		Data:             r.data,
	}}
	if withCommit {
		ev.Position = &pb.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.commit}
	} else {
		ev.Position = &pb.ReadResp_ReadEvent_NoPosition{NoPosition: &shared.Empty{}}
	}
	return &pb.ReadResp{Content: &pb.ReadResp_Event{Event: ev}}
}
