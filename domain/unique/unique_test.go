package unique_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/domaintest"
	"github.com/eventshop/eventshop/domain/unique"
)

// t0 and given come from domaintest: histories start at t0, a minute apart.
var (
	t0    = domaintest.T0
	given = domaintest.Given
)

func fold(history []domain.Recorded) unique.Claim {
	c := unique.New()
	for _, r := range history {
		c = unique.Evolve(c, r)
	}
	return c
}

const (
	email = "ada@example.com"
	grace = time.Minute
)

var (
	claimedByU1  = unique.Claimed{Value: email, OwnerID: "u1"}
	releasedByU1 = unique.Released{Value: email, OwnerID: "u1", Reason: "owner_never_created"}
	takeover     = []domain.Event{
		unique.Released{Value: email, OwnerID: "u1", Reason: "owner_never_created"},
		unique.Claimed{Value: email, OwnerID: "u2"},
	}
)

func TestDecideClaim(t *testing.T) {
	// The claim of u1 is made at t0.
	tests := []struct {
		name        string
		given       []domain.Event
		owner       string
		ownerExists bool
		ownerFenced bool
		now         time.Time
		then        []domain.Event
		conflict    bool
	}{
		{name: "unclaimed", owner: "u2", now: t0, then: []domain.Event{unique.Claimed{Value: email, OwnerID: "u2"}}},
		{name: "released before", given: []domain.Event{claimedByU1, releasedByU1}, owner: "u2", now: t0,
			then: []domain.Event{unique.Claimed{Value: email, OwnerID: "u2"}}},
		{name: "released, claimed back by the same owner", given: []domain.Event{claimedByU1, releasedByU1}, owner: "u1", now: t0,
			then: []domain.Event{unique.Claimed{Value: email, OwnerID: "u1"}}},

		{name: "same owner again changes nothing", given: []domain.Event{claimedByU1}, owner: "u1", now: t0},
		{name: "same owner, long after, changes nothing", given: []domain.Event{claimedByU1}, owner: "u1", now: t0.Add(time.Hour)},
		{name: "same owner, fenced flag ignored", given: []domain.Event{claimedByU1}, owner: "u1", ownerFenced: true, now: t0},

		{name: "live owner", given: []domain.Event{claimedByU1}, owner: "u2", ownerExists: true, now: t0, conflict: true},
		{name: "live owner, long after", given: []domain.Event{claimedByU1}, owner: "u2", ownerExists: true,
			now: t0.Add(24 * time.Hour), conflict: true},

		{name: "dead owner, just claimed", given: []domain.Event{claimedByU1}, owner: "u2", now: t0, conflict: true},
		{name: "dead owner, a nanosecond short of grace", given: []domain.Event{claimedByU1}, owner: "u2",
			now: t0.Add(grace - time.Nanosecond), conflict: true},
		{name: "dead owner, clock behind the claim", given: []domain.Event{claimedByU1}, owner: "u2",
			now: t0.Add(-time.Hour), conflict: true},
		{name: "dead owner, exactly at grace", given: []domain.Event{claimedByU1}, owner: "u2", now: t0.Add(grace), then: takeover},
		{name: "dead owner, older than grace", given: []domain.Event{claimedByU1}, owner: "u2", now: t0.Add(time.Hour), then: takeover},
		{name: "dead owner, fenced, younger than grace", given: []domain.Event{claimedByU1}, owner: "u2", ownerFenced: true,
			now: t0, then: takeover},
		{name: "dead owner, fenced, older than grace", given: []domain.Event{claimedByU1}, owner: "u2", ownerFenced: true,
			now: t0.Add(time.Hour), then: takeover},
		// The grace runs from the latest claim, not the first one.
		{name: "reclaimed after a takeover, young", owner: "u3", now: t0.Add(90 * time.Second), conflict: true,
			given: []domain.Event{claimedByU1, takeover[0], takeover[1]}},
		{name: "reclaimed after a takeover, old", owner: "u3", now: t0.Add(2*time.Minute + grace),
			given: []domain.Event{claimedByU1, takeover[0], takeover[1]},
			then: []domain.Event{
				unique.Released{Value: email, OwnerID: "u2", Reason: "owner_never_created"},
				unique.Claimed{Value: email, OwnerID: "u3"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := unique.DecideClaim(fold(given(tt.given...)), email, tt.owner, "email_taken",
				tt.ownerExists, tt.ownerFenced, tt.now, grace)
			if tt.conflict {
				var de *domain.Error
				if !errors.As(err, &de) || de.Code != domain.CodeConflict || de.Reason != "email_taken" {
					t.Fatalf("err = %v, want a conflict email_taken", err)
				}
				if !strings.Contains(de.Detail, email) {
					t.Errorf("detail %q does not name the value", de.Detail)
				}
				if len(events) != 0 {
					t.Fatalf("events %#v alongside the error", events)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if !(len(events) == 0 && len(tt.then) == 0) && !reflect.DeepEqual(events, tt.then) {
				t.Fatalf("events\n got %#v\nwant %#v", events, tt.then)
			}
		})
	}
}

func TestDecideClaimUsesTheGivenReason(t *testing.T) {
	c := fold(given(unique.Claimed{Value: "SKU-1", OwnerID: "p1"}))
	for _, reason := range []string{"sku_taken", "email_taken"} {
		_, err := unique.DecideClaim(c, "SKU-1", "p2", reason, true, false, t0, grace)
		if !errors.Is(err, &domain.Error{Code: domain.CodeConflict, Reason: reason}) {
			t.Errorf("live owner: err = %v, want %s", err, reason)
		}
		_, err = unique.DecideClaim(c, "SKU-1", "p2", reason, false, false, t0, grace)
		if !errors.Is(err, &domain.Error{Code: domain.CodeConflict, Reason: reason}) {
			t.Errorf("pending owner: err = %v, want %s", err, reason)
		}
	}
}

func TestEvolveClaim(t *testing.T) {
	tests := []struct {
		name    string
		given   []domain.Event
		owner   string
		since   time.Time
		version int64
	}{
		{"empty", nil, "", time.Time{}, -1},
		{"claimed", []domain.Event{claimedByU1}, "u1", t0, 0},
		{"released", []domain.Event{claimedByU1, releasedByU1}, "", t0, 1},
		{"released by another owner changes nothing", []domain.Event{claimedByU1,
			unique.Released{Value: email, OwnerID: "u9"}}, "u1", t0, 1},
		{"taken over", []domain.Event{claimedByU1, takeover[0], takeover[1]}, "u2", t0.Add(2 * time.Minute), 2},
	}
	for _, tt := range tests {
		c := fold(given(tt.given...))
		if c.Owner != tt.owner || !c.Since.Equal(tt.since) || c.Version != tt.version {
			t.Errorf("%s: claim %+v, want owner %q since %v version %d", tt.name, c, tt.owner, tt.since, tt.version)
		}
	}
}

func TestStream(t *testing.T) {
	a := unique.Stream("user_email-", "ada@example.com")
	if a != unique.Stream("user_email-", "ada@example.com") {
		t.Error("Stream is not deterministic")
	}
	if !strings.HasPrefix(a, "user_email-") || len(a) != len("user_email-")+64 {
		t.Errorf("Stream = %q, want the prefix and a SHA-256 in hex", a)
	}
	if strings.Contains(a, "ada") {
		t.Errorf("Stream %q shows the value", a)
	}
	others := []string{
		unique.Stream("user_email-", "bob@example.com"),
		unique.Stream("user_email-", "Ada@example.com"), // callers normalise first
		unique.Stream("user_email-", ""),
		unique.Stream("product_sku-", "ada@example.com"),
	}
	seen := map[string]bool{a: true}
	for _, o := range others {
		if seen[o] {
			t.Errorf("two values share stream %q", o)
		}
		seen[o] = true
	}
	// The hash is the stable SHA-256 of the value: stored claim streams
	// keep their names across builds.
	if got := unique.Stream("x-", "abc"); got != "x-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("Stream(x-, abc) = %q", got)
	}
}
