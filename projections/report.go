package projections

import (
	"time"

	"github.com/eventshop/eventshop/eventstore"
)

// Report is what the database says about a projection: its checkpoint and
// the last status its active runner reported (see Runner), readable from
// any process.
type Report struct {
	Name     string
	Position eventstore.Position
	// State is a State constant as last reported; StateStopped when no
	// runner reported since ReportTTL, whatever it said before.
	State string
	// Policy is the policy the active runner last reported (PolicyPark
	// when none did).
	Policy string
	// LagEvents is as in Status, exact when LagExact.
	LagEvents int64
	LagExact  bool
	LagTime   time.Duration
	LastError string
	// Parked counts the entries of the live parked list that are not
	// skipped: events that failed, and those waiting behind them.
	Parked int64
	// ReportedAt is when the active runner last reported; zero if never.
	ReportedAt time.Time
	// Rebuild is "" (none pending), "requested", "running", or "failed"
	// (the last one was given up: RebuildError says why).
	Rebuild string
	// RebuildApplied and RebuildParked are the events the running (or
	// else the last) rebuild applied and parked; RebuildError is why the
	// last one was given up, if it was.
	RebuildApplied, RebuildParked int64
	RebuildError                  string
	// RebuiltAt is when the last rebuild was swapped in; zero if never.
	RebuiltAt time.Time
}

// Up reports whether the projection's runner is applying events: live or
// catching up.
func (r Report) Up() bool { return r.State == StateLive || r.State == StateCatchingUp }

// Failing reports whether the projection is stopped by an event it
// cannot apply: failing (retrying) or halted.
func (r Report) Failing() bool { return r.State == StateFailing || r.State == StateHalted }

// ReportTTL is how long a runner's report stays current: a runner reports
// at least this often while it is active.
const ReportTTL = 15 * time.Second
