// Package load is eventshop's load-test harness: an open-model traffic
// generator that plays a shopper mix against the public HTTP API and
// reports what it saw.
//
// Open model: arrivals come at a constant rate whatever happens to earlier
// ones, and every latency counts from the moment its arrival was due, so a
// slow server cannot slow the client down and hide behind it (coordinated
// omission). When MaxInFlight arrivals are already waiting, a new one is
// counted as not scheduled rather than quietly lowering the rate.
//
// A run has a setup (sign in an admin, seed the catalogue through the
// public API up to the wanted size, register and sign in a pool of
// shoppers) that stays out of the timed window, then one phase at a fixed
// rate or, in step mode, phases at rising rates until a goal breaks. The
// report is a plain-text summary, summary.json, an HTML page and its SVG
// plots. Run starts a local eventshop of its own when no target is given.
//
// The harness talks to the system only through the public API, so it can
// be pointed at any deployment on this machine; it refuses other hosts
// unless told otherwise.
package load
