package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// owner is who the private servers run as: the current user, or, for
// root (PostgreSQL refuses to run as root), the postgres user.
type owner struct {
	cred *syscall.Credential // nil: the current user
}

func newOwner() (owner, error) {
	if os.Geteuid() != 0 {
		return owner{}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return owner{}, fmt.Errorf("running as root needs a postgres user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return owner{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}, nil
}

// command runs name as the owner, its output to log.
func (o owner) command(log *os.File, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: o.cred}
	return cmd
}

// chown gives path to the owner.
func (o owner) chown(path string) error {
	if o.cred == nil {
		return nil
	}
	return os.Chown(path, int(o.cred.Uid), int(o.cred.Gid))
}

// Postgres is a private PostgreSQL cluster in a temporary directory, on a
// free port, that can be stopped the hard way and started again.
type Postgres struct {
	dir  string
	Port int
	own  owner
	log  *os.File
}

// StartPostgres initdb's a cluster under dir and starts it.
func StartPostgres(ctx context.Context, dir string, log *os.File) (*Postgres, error) {
	own, err := newOwner()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &Postgres{dir: filepath.Join(dir, "pgdata"), Port: port, own: own, log: log}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, err
	}
	for _, d := range []string{dir, p.dir} {
		if err := own.chown(d); err != nil {
			return nil, err
		}
	}
	if err := own.command(log, "initdb", "-D", p.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").Run(); err != nil {
		return nil, fmt.Errorf("initdb: %w (see %s)", err, log.Name())
	}
	return p, p.Start(ctx)
}

// URL is the connection string of database db.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// Start starts the cluster and waits until it accepts connections.
func (p *Postgres) Start(ctx context.Context) error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200", p.Port, p.dir)
	if err := p.own.command(p.log, "pg_ctl", "-D", p.dir, "-o", opts, "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "60", "start").Run(); err != nil {
		return fmt.Errorf("pg_ctl start: %w", err)
	}
	return waitTCP(ctx, p.Port)
}

// Crash stops the cluster at once, as a power cut would (-m immediate:
// no checkpoint, recovery at the next start).
func (p *Postgres) Crash() error {
	return p.own.command(p.log, "pg_ctl", "-D", p.dir, "-m", "immediate", "-w", "stop").Run()
}

// Stop stops the cluster cleanly.
func (p *Postgres) Stop() error {
	return p.own.command(p.log, "pg_ctl", "-D", p.dir, "-m", "fast", "-w", "stop").Run()
}

// Redis is a private redis-server with an append-only file, so that a
// killed one comes back with what it had acknowledged.
type Redis struct {
	dir  string
	Port int
	log  *os.File
	cmd  *exec.Cmd
	done chan error
}

// StartRedis starts a redis-server with its files under dir.
func StartRedis(ctx context.Context, dir string, log *os.File) (*Redis, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Redis{dir: filepath.Join(dir, "redis"), Port: port, log: log}
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return nil, err
	}
	return r, r.Start(ctx)
}

// URL is the server's redis:// URL.
func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port) }

// Start starts the server and waits until it accepts connections.
func (r *Redis) Start(ctx context.Context) error {
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "")
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	r.done = make(chan error, 1)
	go func(cmd *exec.Cmd, done chan error) { done <- cmd.Wait() }(r.cmd, r.done)
	return waitTCP(ctx, r.Port)
}

// Kill kills the server (SIGKILL) and waits for it to be gone.
func (r *Redis) Kill() error {
	if r.cmd == nil || r.cmd.Process == nil {
		return errors.New("redis is not running")
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
	return nil
}

// waitTCP waits until something accepts connections on port.
func waitTCP(ctx context.Context, port int) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nothing listens on %s: %w", addr, ctx.Err())
		case <-time.After(100 * time.Millisecond): // poll the port
		}
	}
}
