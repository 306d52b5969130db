// Command chaos runs the fault-injection suite (`make chaos`); see package
// chaos. It exits 1 when a check fails, and stops by itself within about
// 10 minutes.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/eventshop/eventshop/tests/chaos"
)

func main() {
	cfg := chaos.Config{Out: os.Stdout}
	flag.StringVar(&cfg.Binary, "eventshop", "bin/eventshop-failpoints", "the eventshop binary, built with -tags failpoints")
	flag.StringVar(&cfg.PaymentsAdminURL, "payments-admin-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"a PostgreSQL server other than the private one, for the test payment provider's database")
	flag.StringVar(&cfg.Dir, "dir", "", "where clusters, data and logs go (default: a new temporary directory)")
	flag.IntVar(&cfg.Rate, "rate", 10, "order flows started a second")
	flag.DurationVar(&cfg.Window, "window", 20*time.Second, "load per scenario")
	flag.DurationVar(&cfg.Timeout, "payment-timeout", 20*time.Second, "the server's ORDER_PAYMENT_TIMEOUT")
	flag.IntVar(&cfg.Shoppers, "shoppers", 20, "shoppers")
	flag.IntVar(&cfg.Products, "products", 4, "products, each with -units in stock")
	flag.Int64Var(&cfg.Units, "units", 150, "each product's stock: small, so that orders race for it")
	only := flag.String("only", "", "comma-separated scenario names to run (default all)")
	limit := flag.Duration("limit", 10*time.Minute, "stop after this long, whatever is left")
	flag.Parse()
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	temporary := cfg.Dir == ""
	if temporary {
		dir, err := os.MkdirTemp("", "eventshop-chaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		cfg.Dir = dir
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelLimit := context.WithTimeout(ctx, *limit)
	defer cancelLimit()

	start := time.Now()
	results, err := chaos.Run(ctx, cfg)
	failed := err != nil
	fmt.Println()
	fmt.Printf("%-26s %-52s %-5s %s\n", "scenario", "check", "", "detail")
	for _, r := range results {
		for _, c := range r.Checks {
			verdict := "ok"
			if !c.OK {
				verdict, failed = "FAIL", true
			}
			fmt.Printf("%-26s %-52s %-5s %s\n", r.Scenario, c.Name, verdict, c.Detail)
		}
	}
	fmt.Printf("\nchaos: %d scenarios in %s\n", len(results), time.Since(start).Round(time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
	}
	if failed {
		fmt.Fprintln(os.Stderr, "chaos: the servers' logs are in", cfg.Dir)
		os.Exit(1)
	}
	if temporary {
		os.RemoveAll(cfg.Dir)
	}
}
