package replay

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/eventshop/eventshop/projections"
)

// follower shows the progress of the targets until they have caught up.
type follower struct {
	cfg         Config
	targets     []*target
	names       []string
	total       int64
	start       time.Time
	bar         *progressbar.ProgressBar
	plain       bool
	lastLine    time.Time
	remoteNoted map[string]bool
	errorShown  map[string]string
}

// follow shows progress until every target has caught up: for a rebuild,
// once no rebuild is pending any more (only a swap clears the request
// filed before) and its checkpoint reached the last event it takes;
// otherwise once its checkpoint did. A target that fails is reported as
// it fails; the replay waits for it to recover. A rebuild given up (an
// event it cannot apply, under policy halt) ends the replay with its
// error. Events parked on the way are counted at the end.
func follow(ctx context.Context, cfg Config, targets []*target) error {
	f := &follower{cfg: cfg, targets: targets, start: time.Now(),
		remoteNoted: map[string]bool{}, errorShown: map[string]string{}}
	for _, t := range targets {
		f.total += t.total
		f.names = append(f.names, t.runner.Name())
	}
	f.bar, f.plain = progressBar(cfg.Out, f.total)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		reports, err := projections.Reports(ctx, cfg.Pool, f.names)
		if err != nil {
			return err
		}
		done, finished, err := f.update(reports)
		if err != nil {
			return err
		}
		f.show(done, finished)
		if finished {
			f.summary(reports)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replay: interrupted at %d of %d events", done, f.total)
		case <-tick.C:
		}
	}
}

// update marks the targets that have caught up, says what is new about
// the others, and returns the events done in all and whether every target
// is done.
func (f *follower) update(reports []projections.Report) (done int64, finished bool, err error) {
	finished = true
	for i, t := range f.targets {
		rep, st, name := reports[i], t.runner.Status(), f.names[i]
		if f.cfg.FromScratch && rep.Rebuild == "failed" {
			return 0, false, fmt.Errorf("replay: the rebuild of %s was given up: %s", name, rep.RebuildError)
		}
		if !t.done {
			caught := !rep.Position.Less(t.last)
			if f.cfg.FromScratch {
				caught = caught && rep.Rebuild == ""
			}
			if caught {
				t.done, t.took = true, time.Since(f.start)
			}
		}
		switch {
		case t.done:
			done += t.total
		case st.Rebuild != nil:
			done += min(st.Rebuild.Applied, t.total)
		default:
			done += min(st.Applied, t.total)
		}
		if !t.done && st.State == projections.StateWaitingForLock && time.Since(f.start) > 2*time.Second && !f.remoteNoted[name] {
			f.remoteNoted[name] = true
			fmt.Fprintf(f.cfg.Out, "replay: %s is active in another process, which carries out the work; following it\n", name)
		}
		if e := failure(st, rep); e != "" && f.errorShown[name] != e {
			f.errorShown[name] = e
			fmt.Fprintf(f.cfg.Out, "replay: %s is failing, retrying: %s\n", name, e)
		}
		finished = finished && t.done
	}
	return done, finished, nil
}

// show moves the bar, or writes a line every two seconds and at the end.
func (f *follower) show(done int64, finished bool) {
	if f.bar != nil {
		_ = f.bar.Set64(done)
	}
	if f.plain && (time.Since(f.lastLine) >= 2*time.Second || finished) {
		f.lastLine = time.Now()
		fmt.Fprintln(f.cfg.Out, progressLine(done, f.total, time.Since(f.start)))
	}
}

// summary says, per target, how many events it took in how long, and how
// many were parked.
func (f *follower) summary(reports []projections.Report) {
	if f.bar != nil {
		_ = f.bar.Finish()
		fmt.Fprintln(f.cfg.Out)
	}
	for i, t := range f.targets {
		rate := float64(t.total) / max(t.took.Seconds(), 1e-3)
		fmt.Fprintf(f.cfg.Out, "replay: %-10s %d events in %s (%.0f events/s)\n", t.runner.Name(), t.total,
			t.took.Round(time.Millisecond), rate)
		if n := reports[i].Parked; n > 0 {
			fmt.Fprintf(f.cfg.Out, "replay: %-10s %d events parked: GET /api/admin/projections/%s/parked\n", t.runner.Name(), n, t.runner.Name())
		}
	}
}

// failure is what a target fails on now: its rebuild's or its own last
// error, from this process's runner or from the stored report; "" when
// it is healthy.
func failure(st projections.Status, rep projections.Report) string {
	switch {
	case st.Rebuild != nil && st.Rebuild.LastError != "":
		return "rebuild: " + st.Rebuild.LastError
	case st.Failing != nil:
		return st.LastError
	case rep.State == projections.StateFailing || rep.State == projections.StateHalted:
		return rep.LastError
	}
	return ""
}

// progressBar returns a progress bar on a terminal; plain is true when out
// is not one, and progress goes as lines instead.
func progressBar(out io.Writer, total int64) (bar *progressbar.ProgressBar, plain bool) {
	f, ok := out.(*os.File)
	if !ok {
		return nil, true
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil, true
	}
	return progressbar.NewOptions64(max(total, 1),
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetDescription("replay"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionFullWidth(),
	), false
}

// progressLine is a plain progress line: events done, rate and ETA.
func progressLine(done, total int64, elapsed time.Duration) string {
	rate := float64(done) / max(elapsed.Seconds(), 1e-3)
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	eta := "-"
	if rate > 0 && done < total {
		eta = (time.Duration(float64(total-done) / rate * float64(time.Second))).Round(time.Second).String()
	}
	return fmt.Sprintf("replay: %d/%d events (%.0f%%), %.0f events/s, ETA %s", done, total, pct, rate, eta)
}
