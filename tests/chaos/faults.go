package chaos

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// createDatabase creates db on the cluster adminURL names.
func createDatabase(ctx context.Context, adminURL, db string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
	return err
}

// dropDatabase drops db on the server adminURL names, as the run ends.
func dropDatabase(adminURL, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
}

// databaseURL is adminURL with its database replaced by db.
func databaseURL(adminURL, db string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + db
	return u.String(), nil
}

// killServer kills eventshop with SIGKILL in the middle of the load and
// starts it again at once.
func killServer(ctx context.Context, e *env) (string, error) {
	e.srv.Kill()
	e.deaths++
	t := time.Now()
	if err := e.start(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("killed; ready again %.1fs later", time.Since(t).Seconds()), nil
}

// stopPostgres stops PostgreSQL the hard way (no checkpoint) for 10 s
// while eventshop keeps running.
func stopPostgres(ctx context.Context, e *env) (string, error) {
	if err := e.pg.Crash(); err != nil {
		return "", fmt.Errorf("stop PostgreSQL: %w", err)
	}
	sleep(ctx, 10*time.Second)
	t := time.Now()
	if err := e.pg.Start(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("down 10s; recovered in %.1fs", time.Since(t).Seconds()), nil
}

// killRedis kills Redis for 15 s; it comes back with its append-only
// file.
func killRedis(ctx context.Context, e *env) (string, error) {
	if err := e.redis.Kill(); err != nil {
		return "", err
	}
	sleep(ctx, 15*time.Second)
	if err := e.redis.Start(ctx); err != nil {
		return "", err
	}
	return "down 15s", nil
}

// termWithSlowClient sends SIGTERM while a client holds a request half
// sent: eventshop must still stop cleanly (exit 0) within its shutdown
// budget (SHUTDOWN_TIMEOUT, 15 s), and is started again.
func termWithSlowClient(ctx context.Context, e *env) (string, error) {
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/orders HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"items\":", e.addr)
	t := time.Now()
	stopErr := e.srv.Stop()
	took := time.Since(t)
	if err := e.start(ctx); err != nil {
		return "", err
	}
	what := fmt.Sprintf("stopped in %.1fs", took.Seconds())
	switch {
	case stopErr != nil:
		return what, fmt.Errorf("SIGTERM with a slow client: %w", stopErr)
	case took > 18*time.Second:
		return what, fmt.Errorf("SIGTERM with a slow client took %s, over the 15 s budget", took.Round(time.Second))
	}
	return what, nil
}

// crashAfterCharge restarts eventshop with the failpoint between charging
// a card and recording the payment armed: the first payment charges the
// card and the process dies at once, as a kill -9 at the worst moment
// would. It is started again unarmed. Meanwhile every client gives up on
// a payment that got no answer, so that the charges the crash cut off
// stay unrecorded: their orders expire, and the process manager must find
// the charges at the provider and give them back.
func crashAfterCharge(ctx context.Context, e *env) (string, error) {
	e.shop.impatient.Store(true)
	defer e.shop.impatient.Store(false)
	if err := e.srv.Stop(); err != nil {
		return "", err
	}
	e.failpoint = "after-charge"
	err := e.start(ctx)
	e.failpoint = ""
	if err != nil {
		return "", err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.srv.Wait(wctx); err == nil || wctx.Err() != nil {
		return "", fmt.Errorf("the armed process did not crash at the failpoint (%v)", err)
	}
	e.deaths++
	t := time.Now()
	if err := e.start(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("crashed after a charge; ready again %.1fs later", time.Since(t).Seconds()), nil
}

// rebuildUnderLoad rebuilds the orders and catalogue read models while
// orders are placed, and the Kafka publisher: every event is published
// again, and the notifier must send none of the mails a second time.
func rebuildUnderLoad(ctx context.Context, e *env) (string, error) {
	for _, name := range []string{"orders.v1", "catalog.v1", "kafka.v1"} {
		if _, err := e.shop.c.must(ctx, 202, "POST", "/api/admin/projections/"+name+"/rebuild", e.shop.admin.token, nil); err != nil {
			return "", err
		}
	}
	return "orders.v1, catalog.v1 and kafka.v1 (every event published again) rebuilt", nil
}
