package eventstore

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Subscription delivers events on a channel until it ends.
type Subscription struct {
	ch     chan Event
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// SubscriptionBuffer is how many events a subscription reads ahead of its consumer.
const SubscriptionBuffer = 512

// NewSubscription runs produce in a goroutine and delivers what it emits.
// emit blocks while the consumer is behind and fails once the subscription
// is closed. When produce returns, the channel is closed and its error (nil
// when the subscription was closed or ctx ended) is what Err reports.
// Adapters use it to build SubscribeAll.
func NewSubscription(ctx context.Context, produce func(ctx context.Context, emit func(Event) error) error) *Subscription {
	ctx, cancel := context.WithCancel(ctx)
	s := &Subscription{ch: make(chan Event, SubscriptionBuffer), cancel: cancel, done: make(chan struct{})}
	emit := func(e Event) error {
		select {
		case s.ch <- e:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	go func() {
		defer close(s.done)
		defer close(s.ch)
		err := produce(ctx, emit)
		if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			err = nil
		}
		s.err = err
	}()
	return s
}

// NewStoreSubscription is NewSubscription for a store that can be closed:
// the subscription also ends when store (a context that ends when the
// store closes) is done, and then reports ErrClosed. It ends even while
// its consumer has stopped reading.
func NewStoreSubscription(ctx, store context.Context, produce func(ctx context.Context, emit func(Event) error) error) *Subscription {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(store, cancel)
	return NewSubscription(ctx, func(ctx context.Context, emit func(Event) error) error {
		defer cancel()
		defer stop()
		err := produce(ctx, emit)
		if store.Err() != nil {
			return ErrClosed
		}
		return err
	})
}

// Events is the delivery channel. It is closed when the subscription ends.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Err reports why the subscription ended: nil when it was closed or its
// context ended, the store's error otherwise. It blocks until the
// subscription has ended.
func (s *Subscription) Err() error {
	<-s.done
	return s.err
}

// Done is closed when the subscription has ended.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Close ends the subscription and waits for its producer to stop.
func (s *Subscription) Close() {
	s.cancel()
	<-s.done
}

// Waker broadcasts "something was appended" to any number of waiters. The
// zero value is not usable; use NewWaker.
type Waker struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewWaker returns a Waker with no pending wake-up.
func NewWaker() *Waker { return &Waker{ch: make(chan struct{})} }

// C returns a channel that is closed at the next Wake.
func (w *Waker) C() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

// Wake releases everyone waiting on a channel from C.
func (w *Waker) Wake() {
	w.mu.Lock()
	close(w.ch)
	w.ch = make(chan struct{})
	w.mu.Unlock()
}

// CatchUp is the produce function of a subscription for stores that can
// only be polled: it reads pages with readAll from the last position it saw,
// emits what matches filter, and when a page comes back short waits for
// wake (or pollInterval, the fallback) before reading again. Because catch-up
// and live delivery are the same read from the same position, the handoff
// has no gap and no duplicate.
//
// readAll reports held=true when events exist that it may not deliver yet
// (an earlier transaction is still open); CatchUp then reads again soon
// instead of waiting for a wake-up that may never come.
func CatchUp(from Position, filter Filter, pageSize int, pollInterval time.Duration, wake *Waker,
	readAll func(ctx context.Context, from Position, count int) (events []Event, held bool, err error),
) func(ctx context.Context, emit func(Event) error) error {
	return func(ctx context.Context, emit func(Event) error) error {
		pos := from
		heldBackoff := time.Millisecond
		for {
			// Take the wake channel before reading, so that an append
			// committed during the read still wakes the next wait.
			woken := wake.C()
			events, held, err := readAll(ctx, pos, pageSize)
			if err != nil {
				return err
			}
			for i := range events {
				if filter.Match(&events[i]) {
					if err := emit(events[i]); err != nil {
						return err
					}
				}
				pos = events[i].Position
			}
			if len(events) == pageSize {
				continue
			}
			wait := pollInterval
			if held {
				wait = heldBackoff
				heldBackoff = min(heldBackoff*2, 100*time.Millisecond)
			} else {
				heldBackoff = time.Millisecond
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-woken:
			case <-t.C:
			}
			t.Stop()
		}
	}
}
