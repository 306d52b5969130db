package auth_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/eventshop/eventshop/internal/services/auth"
)

// TestSecretFileIsMadeOnceAndKept: the first call makes the directory and
// a secret New accepts; the next returns the same secret.
func TestSecretFileIsMadeOnceAndKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := auth.SecretFile(dir)
	if err != nil || len(first) < auth.MinSecretLen {
		t.Fatalf("secret %q, %v", first, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "jwt-secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, %v; want mode 0600", fi, err)
	}
	again, err := auth.SecretFile(dir)
	if err != nil || !bytes.Equal(first, again) {
		t.Fatalf("second call: %q, %v; want %q", again, err, first)
	}
}
