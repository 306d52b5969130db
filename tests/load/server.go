package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// LocalServer is an eventshop the harness started: `eventshop serve` with
// the per-IP rate limits off, on free ports, with its own database, data
// directory and Redis key prefix, so it runs beside a `make run`.
type LocalServer struct {
	URL  string
	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

// ServerConfig says how to start a local eventshop.
type ServerConfig struct {
	Binary      string // the eventshop binary
	DatabaseURL string // its own PostgreSQL database (it must exist)
	DataDir     string // its own data directory
	RedisPrefix string // its own Redis key prefix
	LogPath     string // where its output goes
	// Env is added to the environment last (KEY=value), after the
	// harness's own settings; the rest of the process's environment is
	// passed on.
	Env []string
}

// serverEnv is what isolates a started server and takes the per-IP
// limits off (all load comes from one address), and the bounds on a
// customer's unpaid orders (each of the pool's shoppers stands for many
// customers).
func (c ServerConfig) env() []string {
	return append([]string{
		"DATABASE_URL=" + c.DatabaseURL,
		"EVENTSTORE_URL=" + c.DatabaseURL,
		"DATA_DIR=" + c.DataDir,
		"REDIS_KEY_PREFIX=" + c.RedisPrefix,
		"HTTP_ADDR=127.0.0.1:0",
		"MONGO_ADDR=127.0.0.1:0",
		"KAFKA_ADDR=127.0.0.1:0",
		"SMTP_SINK_ADDR=127.0.0.1:0",
		"MONGO_URL=", "KAFKA_BROKERS=", "SMTP_ADDR=",
		"RATE_LIMIT_PER_SECOND=0",
		"AUTH_RATE_LIMIT_PER_MINUTE=0",
		"MAX_UNPAID_ORDERS=0",
		"MAX_UNPAID_UNITS=0",
		"LOG_LEVEL=warn",
	}, c.Env...)
}

// StartServer starts eventshop serve and waits, up to ctx, until it
// prints its address and answers /readyz with 200.
func StartServer(ctx context.Context, c ServerConfig) (*LocalServer, error) {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.Create(c.LogPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.Binary, "serve")
	cmd.Env = append(os.Environ(), c.env()...)
	cmd.Stderr = logf
	// Its own process group: a Ctrl-C reaches the harness, which stops
	// the server after writing its report.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", c.Binary, err)
	}
	s := &LocalServer{cmd: cmd, done: make(chan error, 1), log: logf}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if _, u, ok := strings.Cut(line, "health     "); ok {
				select {
				case urls <- strings.TrimSuffix(strings.TrimSpace(u), "/healthz"):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { s.done <- cmd.Wait() }()
	select {
	case s.URL = <-urls:
	case err := <-s.done:
		s.done <- err
		s.Stop()
		return nil, fmt.Errorf("eventshop serve ended before listening (%v): see %s", err, c.LogPath)
	case <-ctx.Done():
		s.Stop()
		return nil, fmt.Errorf("eventshop serve did not print its address: %w", ctx.Err())
	}
	if err := waitReady(ctx, s.URL); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w (its log: %s)", err, c.LogPath)
	}
	return s, nil
}

// waitReady polls base/readyz until it answers 200 or ctx ends.
func waitReady(ctx context.Context, base string) error {
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", base+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s/readyz did not answer 200: %w", base, ctx.Err())
		case <-time.After(200 * time.Millisecond): // poll readiness
		}
	}
}

// PID is the server's process id.
func (s *LocalServer) PID() int { return s.cmd.Process.Pid }

// Stop asks the server to shut down (SIGTERM), waits up to 30 s, then
// kills it.
func (s *LocalServer) Stop() error {
	defer s.log.Close()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.done <- err
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("eventshop serve: %w", err)
		}
		return err
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		return errors.New("eventshop serve did not stop within 30s: killed")
	}
}

// Kill kills the server (SIGKILL), as a crash would, and waits until it
// is gone.
func (s *LocalServer) Kill() {
	defer s.log.Close()
	_ = s.cmd.Process.Kill()
	err := <-s.done
	s.done <- err
}

// Wait waits until the server's process ends (or ctx does) and returns
// how it ended.
func (s *LocalServer) Wait(ctx context.Context) error {
	select {
	case err := <-s.done:
		s.done <- err
		s.log.Close()
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
