// Command loadgen is eventshop's load test (`make load`): it plays the
// shopper mix against a running eventshop, or one it starts, at a
// constant arrival rate, and writes a report. See package load.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/eventshop/eventshop/tests/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// run parses args (with defaults from getenv where noted) and runs the
// harness; a run that fails its goals is not an error (-fail-on-goals
// makes it one).
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var cfg load.Config
	cfg.Goals = load.DefaultGoals
	fs.StringVar(&cfg.Target, "target", "", "base URL of the eventshop under test; empty: start one from -eventshop for the run")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a target that is not 127.0.0.0/8, ::1 or localhost")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "the target's process id, to report its CPU use (a started one is known)")
	fs.Float64Var(&cfg.Rate, "rate", 1000, "arrivals per second (a place+pay+read flow is one arrival)")
	fs.DurationVar(&cfg.Duration, "duration", 60*time.Second, "length of the timed window")
	fs.StringVar(&cfg.Mix, "mix", load.MixShoppers, "what the arrivals do: "+load.MixShoppers+" (the shopper mix) or "+load.MixOrders+" (every arrival places, pays and reads back an order)")
	fs.BoolVar(&cfg.Step, "step", false, "step mode: raise the rate step by step until a goal breaks, and report the knee")
	fs.Float64Var(&cfg.StepStart, "step-start", 100, "step mode: first rate")
	fs.Float64Var(&cfg.StepBy, "step-by", 100, "step mode: rate added each step")
	fs.Float64Var(&cfg.StepMax, "step-max", 2000, "step mode: highest rate")
	fs.DurationVar(&cfg.StepDuration, "step-duration", 20*time.Second, "step mode: length of each step")
	fs.IntVar(&cfg.Products, "products", 5000, "catalogue size: seeded through the API up to this many products")
	fs.IntVar(&cfg.Shoppers, "shoppers", 100, "shoppers registered and signed in before the timed window")
	fs.IntVar(&cfg.SeedWorkers, "seed-workers", 8, "products listed at once while seeding")
	fs.IntVar(&cfg.ViewIDs, "view-ids", 1000, "product ids collected from the listing to view and order")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", 1000, "arrivals in flight at once; beyond it an arrival is counted as not scheduled")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "per request")
	fs.DurationVar(&cfg.SetupTimeout, "setup-timeout", time.Hour, "for seeding and signing in")
	fs.Float64Var(&cfg.Goals.MaxErrorRate, "goal-error-rate", 0, "goal: largest share of failed requests (0.01 is 1%)")
	fs.DurationVar(&cfg.Goals.GetP99, "goal-get-p99", cfg.Goals.GetP99, "goal: p99 of every GET route")
	fs.DurationVar(&cfg.Goals.PostP99, "goal-post-p99", cfg.Goals.PostP99, "goal: p99 of every POST route")
	fs.DurationVar(&cfg.Goals.FlowP99, "goal-flow-p99", cfg.Goals.FlowP99, "goal: p99 of place→pay→visible")
	fs.DurationVar(&cfg.Goals.MailWithin, "goal-mail-within", cfg.Goals.MailWithin, "goal: every mail the window caused listed as sent this soon after its end")
	fs.StringVar(&cfg.AdminEmail, "admin-email", envOr(getenv, "ADMIN_EMAIL", "admin@example.com"), "an admin who lists the seeded products ($ADMIN_EMAIL)")
	fs.StringVar(&cfg.Out, "out", ".data/load-report", "directory for the report")
	fs.StringVar(&cfg.Server.Binary, "eventshop", "bin/eventshop", "the eventshop binary to start when there is no -target")
	fs.StringVar(&cfg.Server.DatabaseURL, "database-url", "postgres://postgres@127.0.0.1:5432/eventshop_load?sslmode=disable",
		"the started eventshop's own database (it must exist)")
	fs.StringVar(&cfg.Server.DataDir, "data-dir", ".data/load-server", "the started eventshop's own data directory")
	fs.StringVar(&cfg.Server.RedisPrefix, "redis-prefix", "eventshop-load:", "the started eventshop's own Redis key prefix")
	cpuProfile := fs.String("cpuprofile", "", "write the generator's own CPU profile of the whole run to this file")
	failOnGoals := fs.Bool("fail-on-goals", false, "exit non-zero when a goal fails (the last step, in step mode, fails by design)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	// The password is never a flag, so it stays out of the process list.
	cfg.AdminPassword = envOr(getenv, "ADMIN_PASSWORD", "Admin123!")
	cfg.Server.LogPath = filepath.Join(cfg.Out, "eventshop.log")
	cfg.Log = stdout
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *failOnGoals && !cfg.Step {
		for _, p := range res.Phases {
			if !p.Pass {
				return errors.New("a goal failed")
			}
		}
	}
	return nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
