//go:build unix

package notifier_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/internal/testsupport/syncbuf"
	"github.com/eventshop/eventshop/notifications/ledger"
	"github.com/eventshop/eventshop/notifications/notifier"
	"github.com/eventshop/eventshop/notifications/templates"
	"github.com/eventshop/eventshop/published"
)

// childEnv, when set, holds the childConfig (JSON) with which
// TestNotifierChildProcess runs a notifier instead of testing.
const childEnv = "EVENTSHOP_NOTIFIER_TEST_CHILD"

// childConfig is what a child notifier process runs with.
type childConfig struct {
	Brokers     []string
	DatabaseURL string
	SMTPAddr    string
	GroupID     string
	DLQTopic    string
	// Directory is a JSON file of a directory: what the lookups know.
	Directory string
	// CrashAfter, when positive, makes the child SIGKILL itself as soon as
	// its CrashAfter-th mail was accepted, before the ledger records it;
	// it first writes that mail's Message-ID to WindowFile.
	CrashAfter int
	WindowFile string
}

// directory is the users and order owners a child's lookups know.
type directory struct {
	Users  map[uuid.UUID]templates.Recipient
	Owners map[string]uuid.UUID
}

// crashSender sends with the real sender and, after the after-th mail the
// server accepted, kills its own process: exactly between the SMTP accept
// and MarkSent, the window the ledger cannot close.
type crashSender struct {
	*mail.Sender
	after  int
	window string
	sent   atomic.Int64
}

func (s *crashSender) Send(ctx context.Context, m mail.Message) error {
	err := s.Sender.Send(ctx, m)
	if err == nil && s.after > 0 && s.sent.Add(1) == int64(s.after) {
		if err := os.WriteFile(s.window, []byte(m.MessageID), 0o600); err != nil {
			panic(err) // the parent then sees an exit status, not SIGKILL
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal cannot be caught; nothing runs after it
	}
	return err
}

// TestNotifierChildProcess is not a test: the crash tests re-execute the
// test binary to run it as a notifier process they can kill. It runs until
// its stdin is closed (or the parent dies).
func TestNotifierChildProcess(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("the notifier process of the crash tests; runs only when they start it")
	}
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(cfg.Directory)
	if err != nil {
		t.Fatal(err)
	}
	var dir directory
	if err := json.Unmarshal(b, &dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	pool, err := newPool(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	render, err := templates.New(templates.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sender, err := newSender(cfg.SMTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := notifier.New(notifier.Config{
		Brokers: cfg.Brokers, GroupID: cfg.GroupID, Ledger: ledger.New(pool), Renderer: render,
		Sender: &crashSender{Sender: sender, after: cfg.CrashAfter, window: cfg.WindowFile},
		Recipients: func(_ context.Context, id uuid.UUID) (templates.Recipient, error) {
			r, ok := dir.Users[id]
			if !ok {
				return templates.Recipient{}, errors.New("unknown user " + id.String())
			}
			return r, nil
		},
		Owner: func(_ context.Context, env published.Envelope) (uuid.UUID, error) {
			id, ok := dir.Owners[strings.TrimPrefix(env.Subject, order.StreamPrefix)]
			if !ok {
				return uuid.Nil, errors.New("unknown order " + env.Subject)
			}
			return id, nil
		},
		// A lease far longer than the tests wait for their mails: the
		// restarted notifier must take the killed one's rows over because
		// their holder is gone, not because the lease ran out.
		RetryMin: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond, Lease: 10 * time.Minute,
		// One that dies after its k-th mail has one lane, so exactly k
		// are out when it dies.
		Lanes:    map[bool]int{true: 1, false: 0}[cfg.CrashAfter > 0],
		DLQTopic: cfg.DLQTopic, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// child is a notifier process started by a test.
type child struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *syncbuf.Buffer
	done  chan struct{} // closed once the process is reaped
	err   error         // cmd.Wait's, once done is closed
	// windowFile is childConfig.WindowFile.
	windowFile string
}

// startChild writes what the lookups must know and starts a notifier
// process in the group "test-notifier"; with crashAfter > 0 it kills
// itself in the window after that many mails (see childConfig). The test's
// end kills it if it still runs.
func (e *env) startChild(crashAfter int) *child {
	e.t.Helper()
	tmp := e.t.TempDir()
	dir := directory{Users: map[uuid.UUID]templates.Recipient{}, Owners: map[string]uuid.UUID{}}
	e.users.Range(func(k, v any) bool { dir.Users[k.(uuid.UUID)] = v.(templates.Recipient); return true })
	e.owners.Range(func(k, v any) bool { dir.Owners[k.(string)] = v.(uuid.UUID); return true })
	cfg := childConfig{
		Brokers: e.brokers, DatabaseURL: e.dbURL, SMTPAddr: e.sink.Addr(), GroupID: "test-notifier",
		DLQTopic: dlqTopic, Directory: filepath.Join(tmp, "directory.json"),
		CrashAfter: crashAfter, WindowFile: filepath.Join(tmp, "window"),
	}
	b, err := json.Marshal(dir)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Directory, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	if b, err = json.Marshal(cfg); err != nil {
		e.t.Fatal(err)
	}
	c := &child{t: e.t, out: &syncbuf.Buffer{}, done: make(chan struct{}), windowFile: cfg.WindowFile}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestNotifierChildProcess$", "-test.timeout=5m")
	c.cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		e.t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	e.t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		if e.t.Failed() {
			e.t.Logf("notifier process %d (%v):\n%s", c.cmd.Process.Pid, c.err, c.out)
		}
	})
	return c
}

// window returns the Message-ID the process wrote before killing itself.
func (c *child) window() string {
	c.t.Helper()
	b, err := os.ReadFile(c.windowFile)
	if err != nil {
		c.t.Fatalf("Message-ID of the mail in the window: %v", err)
	}
	return string(b)
}

// wait waits for the process to end and returns its state.
func (c *child) wait(within time.Duration) *os.ProcessState {
	c.t.Helper()
	select {
	case <-c.done:
		return c.cmd.ProcessState
	case <-time.After(within):
		c.t.Fatalf("notifier process %d still running after %s", c.cmd.Process.Pid, within)
		return nil
	}
}

// stop ends the process the clean way (its Run returns) and fails the test
// unless it exited with status 0.
func (c *child) stop() {
	c.t.Helper()
	_ = c.stdin.Close()
	c.wait(30 * time.Second)
	if c.err != nil {
		c.t.Fatalf("notifier process %d: %v\n%s", c.cmd.Process.Pid, c.err, c.out)
	}
}

// kill SIGKILLs the process and waits for it to be gone.
func (c *child) kill() {
	c.t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		c.t.Fatal(err)
	}
	c.wait(30 * time.Second)
}

// killedBySIGKILL reports whether the process ended from SIGKILL.
func killedBySIGKILL(s *os.ProcessState) bool {
	ws, ok := s.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestCrashAfterSendBeforeMarkSent kills the notifier exactly in the one
// window the ledger cannot close: the SMTP server accepted the mail, the
// ledger does not know. The documented guarantee there is at least once
// with a stable Message-ID: the restarted notifier sends the mails of the
// window a second time, with the same Message-ID, and every other mail
// once. The window is the mails the batch at the crash had sent and not
// recorded yet: the k-th and those before it in its batch.
func TestCrashAfterSendBeforeMarkSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keys := e.publishShop("Crash", 10, 5, false)
	const k = 7 // the mail sent when the process dies
	first := e.startChild(k)
	if s := first.wait(60 * time.Second); !killedBySIGKILL(s) {
		t.Fatalf("notifier process ended with %v, want killed by SIGKILL in the window\n%s", s, first.out)
	}
	last := first.window()

	// At the crash: k mails out. The window is every one of them the
	// ledger does not record as sent: the k-th and the batch's mails
	// before it, all claimed at attempt 1. The other rows not sent were
	// claimed by the batch and never sent.
	atCrash := countByMessageID(e.sink.Messages())
	if len(atCrash) != k || atCrash[last] != 1 {
		t.Fatalf("at the crash: mails by Message-ID %v, want %d mails, %s among them", atCrash, k, last)
	}
	inWindow, claimed := map[string]bool{}, 0
	for _, r := range e.rows() {
		switch {
		case r.Status == ledger.StatusSent:
		case r.Status != ledger.StatusSending || r.Attempts != 1:
			t.Fatalf("at the crash: row %+v, want sending at attempt 1", r)
		case atCrash[r.MessageID] == 1:
			inWindow[r.MessageID] = true
		default:
			claimed++
		}
	}
	if !inWindow[last] || len(inWindow)+claimed > notifier.DefaultBatch {
		t.Fatalf("at the crash: %d rows sent and not recorded, %s among them: %v; %d claimed and not sent; want at most a batch (%d)",
			len(inWindow), last, inWindow, claimed, notifier.DefaultBatch)
	}
	t.Logf("at the crash: %d mails sent and not recorded, %d claimed and not sent", len(inWindow), claimed)

	second := e.startChild(0)
	rows := e.waitAllSent(keys, 60*time.Second)
	second.stop()

	msgs := e.sink.Messages()
	counts := countByMessageID(msgs)
	taken := 0 // rows not sent at the crash, claimed again after it
	for _, key := range keys {
		id, r, want := e.messageID(key), rows[key], 1
		if inWindow[id] {
			want = 2
		}
		if counts[id] != want {
			t.Errorf("%s (%s): %d mails, want %d", key, id, counts[id], want)
		}
		if r.Attempts == 2 {
			taken++
		} else if r.Attempts != 1 || inWindow[id] {
			t.Errorf("%s: row at attempt %d, want 2 in the window and 1 or 2 (claimed at the crash) elsewhere", key, r.Attempts)
		}
	}
	if taken != len(inWindow)+claimed {
		t.Errorf("%d rows claimed again, want the %d not sent at the crash", taken, len(inWindow)+claimed)
	}
	if len(msgs) != len(keys)+len(inWindow) {
		t.Errorf("%d mails, want %d: one each and the %d in the window twice", len(msgs), len(keys)+len(inWindow), len(inWindow))
	}
	// A resend is the same mail, not merely the same Message-ID.
	copies := map[string][]string{}
	for _, m := range msgs {
		if inWindow[m.MessageID] {
			copies[m.MessageID] = append(copies[m.MessageID], strings.Join(m.To, ",")+"|"+m.Subject+"|"+m.TextBody)
		}
	}
	for id, c := range copies {
		if len(c) == 2 && c[0] != c[1] {
			t.Errorf("the two copies of %s differ:\n%s\n%s", id, c[0], c[1])
		}
	}
}

// TestKilledMidBatch kills the notifier at an arbitrary moment of a batch
// and restarts it: no mail is lost, and only mails in flight at the kill,
// at most a batch per lane (DefaultLanes × DefaultBatch), can go out
// twice or be claimed again.
func TestKilledMidBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keys := e.publishShop("Batch", 15, 10, false)
	first := e.startChild(0)
	e.waitMails(15)
	first.kill()
	if n := len(e.sink.Messages()); n >= len(keys) {
		t.Fatalf("%d of %d mails sent before the kill: it was not mid-batch", n, len(keys))
	}

	second := e.startChild(0)
	rows := e.waitAllSent(keys, 60*time.Second)
	second.stop()

	counts := countByMessageID(e.sink.Messages())
	twice, retried := 0, 0
	for _, key := range keys {
		id, r := e.messageID(key), rows[key]
		switch n := counts[id]; {
		case n == 0:
			t.Errorf("%s (%s): lost, no mail", key, id)
		case n == 2:
			twice++
			if r.Attempts != 2 {
				t.Errorf("%s: sent twice but its row is at attempt %d, want 2", key, r.Attempts)
			}
		case n > 2:
			t.Errorf("%s (%s): %d mails", key, id, n)
		}
		if r.Attempts > 1 {
			retried++
		}
	}
	if inFlight := notifier.DefaultLanes * notifier.DefaultBatch; twice > inFlight || retried > inFlight {
		t.Errorf("%d mails sent twice, %d rows claimed again; want at most those in flight, a batch per lane (%d)", twice, retried, inFlight)
	}
	if len(counts) != len(keys) {
		t.Errorf("mails of %d Message-IDs, want %d", len(counts), len(keys))
	}
	if len(rows) != len(keys) {
		t.Errorf("%d ledger rows, want one per (event, template): %d", len(rows), len(keys))
	}
}
