package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// walkthrough returns the first sh block after "## Using the API" in the
// README: the curl walk-through a reader pastes against `make run`.
func walkthrough(t *testing.T) string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	section, block := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			section = line == "## Using the API"
		case section && !block && line == "```sh":
			block = true
		case block && line == "```":
			return b.String()
		case block:
			b.WriteString(line + "\n")
		}
	}
	t.Fatal("README.md: no sh block under ## Using the API")
	return ""
}

// TestReadmeWalkthrough runs the README's curl walk-through verbatim,
// with bash, curl and jq, against the local run (only the address in its
// first line is the test's): every step must succeed.
func TestReadmeWalkthrough(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the walk-through cannot run", tool)
		}
	}
	script := walkthrough(t)
	const first = "B=http://127.0.0.1:8080;"
	if !strings.HasPrefix(script, first) {
		t.Fatalf("the walk-through should start with %q, the local run's address:\n%s", first, script)
	}
	s := newE2E(t)
	script = "set -euo pipefail\nB=" + s.base + ";" + strings.TrimPrefix(script, first)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("the walk-through failed: %v\n%s", err, out)
	}
	text := string(out)
	// A problem+json body (an error) anywhere means a step went wrong.
	if m := regexp.MustCompile(`"status":\s*[45]\d\d`).FindString(text); m != "" {
		t.Errorf("a step answered an error (%s):\n%s", m, text)
	}
	for _, want := range []string{
		`"status":"paid"`, `"status":"completed"`, `"status":"cancelled"`, `"order.completed"`,
		`"roles":["customer","vendor"]`, `"rebuild":"requested"`, "\n204\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the walk-through's output lacks %s:\n%s", want, text)
		}
	}
}
