package auth

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
)

// SecretFile returns the signing secret kept in dir/jwt-secret, making a
// random one of 32 bytes (64 hex characters) and writing it there, with
// dir, when the file is missing or shorter than MinSecretLen: the local
// run's secret, which survives restarts so that its tokens do. Errors: a
// directory or file that cannot be written.
func SecretFile(dir string) ([]byte, error) {
	path := filepath.Join(dir, "jwt-secret")
	if b, err := os.ReadFile(path); err == nil && len(b) >= MinSecretLen {
		return b, nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return nil, err
	}
	secret := []byte(hex.EncodeToString(buf))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, secret, 0o600); err != nil {
		return nil, err
	}
	return secret, nil
}
