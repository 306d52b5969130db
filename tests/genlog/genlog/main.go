// Command genlog writes a realistic event log of a given size straight
// into an event store (`make genlog EVENTS=1000000`); see package genlog.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/eventstore/adapter"
	"github.com/eventshop/eventshop/eventstore/snapshots"
	"github.com/eventshop/eventshop/tests/genlog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "genlog:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("genlog", flag.ContinueOnError)
	def := getenv("EVENTSTORE_URL")
	if def == "" {
		def = getenv("DATABASE_URL")
	}
	if def == "" {
		def = "postgres://postgres@127.0.0.1:5432/eventshop?sslmode=disable"
	}
	url := fs.String("store", def, "the event store: postgres://… or esdb://… (default $EVENTSTORE_URL, else $DATABASE_URL, else the local run's)")
	events := fs.Int("events", 100_000, "events to write, at least")
	seed := fs.Uint64("seed", 1, "seed of the log's choices")
	snapURL := fs.String("snapshots", "", "the PostgreSQL database (DATABASE_URL) that gets the long product streams' snapshots, as the write side "+
		"would have saved them; default -store when it is a postgres:// URL, else none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *snapURL == "" && (strings.HasPrefix(*url, "postgres://") || strings.HasPrefix(*url, "postgresql://")) {
		*snapURL = *url
	}
	var snaps commands.SnapshotStore
	if *snapURL != "" {
		pool, err := pgxpool.New(ctx, *snapURL)
		if err != nil {
			return fmt.Errorf("-snapshots: %w", err)
		}
		defer pool.Close()
		snaps = snapshots.New(pool)
	}
	store, err := adapter.Open(ctx, *url, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer store.Close()
	started := time.Now()
	last := started
	sum, err := genlog.Generate(ctx, store, genlog.Options{Events: *events, Seed: *seed, Snapshots: snaps, Progress: func(n int) {
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			fmt.Fprintf(out, "%d events, %.0f/s\n", n, float64(n)/time.Since(started).Seconds())
		}
	}})
	took := time.Since(started)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %d events in %s (%.0f/s): %d users (%d vendors, password %q), %d products, %d orders %v; "+
		"hot product %s with %d events; %d product snapshots\n", sum.Events, took.Round(time.Millisecond), float64(sum.Events)/took.Seconds(),
		sum.Users, sum.Vendors, genlog.DefaultPassword, sum.Products, sum.Orders, sum.ByStatus, sum.HotProduct, sum.HotEvents, sum.Snapshots)
	return nil
}
