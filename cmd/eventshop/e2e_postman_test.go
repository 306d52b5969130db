package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// postmanDir holds the Postman collection, its environment and the
// pinned newman (package.json, package-lock.json).
const postmanDir = "../../postman"

// newman returns the path of the pinned newman, installing it with npm ci
// when it is not there yet. It skips the test, saying why, when npm is
// not on the machine or cannot install it (the collection is still held
// to the OpenAPI document by the postman package's test).
func newman(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join(postmanDir, "node_modules", ".bin", "newman"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed, so newman cannot be: the Postman collection is not run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = postmanDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("npm ci of newman failed, so the Postman collection is not run: %v\n%s", err, out)
	}
	return bin
}

// TestE2EPostmanCollection runs postman/eventshop.postman_collection.json
// with newman against the local run, as a developer would after
// `make run`: every request's assertions must pass.
func TestE2EPostmanCollection(t *testing.T) {
	t.Parallel()
	bin := newman(t)
	s := newE2E(t)
	report := filepath.Join(t.TempDir(), "newman.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "eventshop.postman_collection.json",
		"-e", "eventshop.postman_environment.json", "--env-var", "baseUrl="+s.base,
		"--reporters", "cli,json", "--reporter-json-export", report, "--color", "off", "--disable-unicode")
	cmd.Dir = postmanDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("newman: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Run struct {
			Stats map[string]struct {
				Total  int `json:"total"`
				Failed int `json:"failed"`
			} `json:"stats"`
		} `json:"run"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("newman's report: %v", err)
	}
	requests, assertions := r.Run.Stats["requests"], r.Run.Stats["assertions"]
	if requests.Total < 20 || requests.Failed != 0 || assertions.Total < 40 || assertions.Failed != 0 {
		t.Errorf("newman ran %d requests (%d failed) and %d assertions (%d failed), want at least 20 and 40, none failed\n%s",
			requests.Total, requests.Failed, assertions.Total, assertions.Failed, out)
	}
}
