package environ

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"postgres://user:s3cret@db:5432/x":                                     "postgres://user:xxxxx@db:5432/x",
		"postgres://user@db/x?password=s3cret&sslmode=off":                     "postgres://user@db/x?password=xxxxx&sslmode=off",
		"esdb://admin:s3cret@node:2113?tls=false":                              "esdb://admin:xxxxx@node:2113?tls=false",
		"host=db user=u password=s3cret dbname=x":                              "(not a URL)",
		"admin:s3cret@db:5432/x":                                               "(not a URL)",
		"postgres://user@db/x?sslpassword=s3cret&tls=false":                    "postgres://user@db/x?sslpassword=xxxxx&tls=false",
		"mongodb://db:27017/?authMechanismProperties=AWS_SESSION_TOKEN:s3cret": "mongodb://db:27017/?authMechanismProperties=xxxxx",
	} {
		if got := RedactURL(raw); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// TestValues: defaults apply to unset and blank variables, values are
// trimmed, and every wrong variable is named in one error.
func TestValues(t *testing.T) {
	env := map[string]string{"A": "  x ", "B": " ", "D": "2s", "D0": "0", "N": "7", "L": "0", "LIST": " a, ,b ,", "T": "true"}
	e := New(func(k string) string { return env[k] })
	if got := e.Get("A", "def"); got != "x" {
		t.Errorf("Get(A) = %q", got)
	}
	if got := e.Get("B", "def"); got != "def" {
		t.Errorf("Get(B) = %q, want the default", got)
	}
	if got := e.Raw("A"); got != "  x " {
		t.Errorf("Raw(A) = %q, want it untrimmed", got)
	}
	if e.Duration("D", "1s") != 2*time.Second || e.Duration("UNSET", "3s") != 3*time.Second {
		t.Error("Duration: wrong value or default")
	}
	if e.DurationOrOff("D0", "1s") != 0 || e.DurationOrOff("D", "1s") != 2*time.Second || e.DurationOrOff("UNSET", "1s") != time.Second {
		t.Error("DurationOrOff: wrong value or default")
	}
	if e.Int("N", 1) != 7 || e.Limit("L", 5) != 0 || !e.Bool("T") || e.Bool("UNSET") {
		t.Error("Int, Limit or Bool: wrong value")
	}
	if got := strings.Join(e.List("LIST"), "|"); got != "a|b" {
		t.Errorf("List = %q, want a|b", got)
	}
	if err := e.Err(); err != nil {
		t.Fatalf("Err = %v, want none", err)
	}

	bad := map[string]string{"D": "-1s", "N": "0", "L": "-1", "Z": "soon", "O": "-2s"}
	e = New(func(k string) string { return bad[k] })
	e.Duration("D", "1s")
	e.Int("N", 1)
	e.Limit("L", 1)
	e.Duration("Z", "1s")
	e.DurationOrOff("O", "1s")
	err := e.Err()
	for _, k := range []string{"D:", "N:", "L:", "Z:", "O:"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("Err = %v, want it to name %s", err, k)
		}
	}
	if strings.Contains(err.Error(), "soon") {
		t.Errorf("Err = %v shows a value", err)
	}
}

// TestFiles: any variable may come from NAME_FILE (a mounted secret),
// trailing newline dropped; both set, or an unreadable file, is an error
// that names the variable and not the value.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	secret := strings.Repeat("s3cret-", 6)
	path := filepath.Join(dir, "jwt")
	if err := os.WriteFile(path, []byte(secret+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := New(func(k string) string { return map[string]string{"JWT_SECRET_FILE": path}[k] })
	if got := e.Raw("JWT_SECRET"); got != secret || e.Err() != nil {
		t.Fatalf("JWT_SECRET_FILE: got %q, err %v", got, e.Err())
	}
	for what, env := range map[string]map[string]string{
		"both":       {"JWT_SECRET": secret, "JWT_SECRET_FILE": path},
		"unreadable": {"JWT_SECRET_FILE": filepath.Join(dir, "missing")},
	} {
		e := New(func(k string) string { return env[k] })
		if got := e.Raw("JWT_SECRET"); got != "" {
			t.Errorf("%s: got %q, want nothing", what, got)
		}
		err := e.Err()
		if err == nil || !strings.Contains(err.Error(), "JWT_SECRET") || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %v, want one naming JWT_SECRET without its value", what, err)
		}
	}
}
