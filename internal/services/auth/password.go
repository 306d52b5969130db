package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// ErrMalformedHash is returned by VerifyPassword for a string that is not
// an argon2id PHC hash it can check.
var ErrMalformedHash = errors.New("auth: malformed password hash")

// argon2id parameters recommended by OWASP (Password Storage Cheat Sheet):
// 19 MiB of memory, 2 passes, 1 lane.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Bounds on parameters read back from a stored hash, so that a corrupted
// row cannot make one login allocate gigabytes or spin for minutes.
const (
	maxArgonMemory = 1 << 20 // KiB, 1 GiB
	maxArgonTime   = 64
	minSaltLen     = 8
	minKeyLen      = 16
	maxFieldLen    = 128 // bytes of a decoded salt or key
)

// dummyHash is a real hash with the current parameters (of a random
// password nobody knows), so DummyVerify costs what a real check costs.
// TestDummyHashMatchesParameters keeps it in step with the constants.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$b/W1iC3zOJyB+SZHfTQ2UQ$DOl7JAdWp/4FiKPkXGZLzcVWPAytgVdrxsX4sryDQHw"

// b64 is the PHC encoding: standard alphabet, no padding; strict, so one
// hash has one spelling.
func b64() *base64.Encoding { return base64.RawStdEncoding.Strict() }

// HashPassword hashes password with argon2id and a fresh 16-byte random
// salt, and returns it in PHC string format:
// "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>" (unpadded standard base64).
// It returns an error only if the system's random source fails.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return encodeHash(argonParams{memory: argonMemory, time: argonTime, threads: argonThreads}, salt, key), nil
}

// VerifyPassword reports whether password matches encoded, a PHC argon2id
// hash whose own parameters (m, t, p, salt and key length) are used, so
// hashes made with older parameters keep working. The comparison is in
// constant time. It returns false, nil on a mismatch and ErrMalformedHash
// (wrapped) when encoded cannot be parsed.
func VerifyPassword(encoded, password string) (bool, error) {
	params, salt, want, err := decodeHash(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, params.time, params.memory, params.threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// DummyVerify spends as long as VerifyPassword does on a real hash and
// discards the result. Call it when the account is unknown, so that an
// unknown email and a wrong password take the same time.
func DummyVerify(password string) {
	_, _ = VerifyPassword(dummyHash, password)
}

// NeedsRehash reports whether encoded was made with other parameters than
// HashPassword uses now (or cannot be parsed), so that a caller holding the
// plain password after a successful login can store a fresh hash.
func NeedsRehash(encoded string) bool {
	params, salt, key, err := decodeHash(encoded)
	return err != nil ||
		params != argonParams{memory: argonMemory, time: argonTime, threads: argonThreads} ||
		len(salt) != argonSaltLen || len(key) != argonKeyLen
}

type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
}

func encodeHash(p argonParams, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64().EncodeToString(salt), b64().EncodeToString(key))
}

// decodeHash parses "$argon2id$v=19$m=M,t=T,p=P$salt$key".
func decodeHash(encoded string) (argonParams, []byte, []byte, error) {
	var p argonParams
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return p, nil, nil, fmt.Errorf("%w: not a PHC string", ErrMalformedHash)
	}
	if parts[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("%w: algorithm is not argon2id", ErrMalformedHash)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: unsupported argon2 version", ErrMalformedHash)
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return p, nil, nil, fmt.Errorf("%w: want parameters m, t and p", ErrMalformedHash)
	}
	m, errM := paramValue(fields[0], "m", maxArgonMemory)
	t, errT := paramValue(fields[1], "t", maxArgonTime)
	threads, errP := paramValue(fields[2], "p", 255)
	if err := errors.Join(errM, errT, errP); err != nil {
		return p, nil, nil, fmt.Errorf("%w: %w", ErrMalformedHash, err)
	}
	if m < 8*threads { // argon2 needs 8 KiB per lane
		return p, nil, nil, fmt.Errorf("%w: memory too small for parallelism", ErrMalformedHash)
	}
	p = argonParams{memory: m, time: t, threads: uint8(threads)}
	salt, err := b64().DecodeString(parts[4])
	if err != nil || len(salt) < minSaltLen || len(salt) > maxFieldLen {
		return p, nil, nil, fmt.Errorf("%w: bad salt", ErrMalformedHash)
	}
	key, err := b64().DecodeString(parts[5])
	if err != nil || len(key) < minKeyLen || len(key) > maxFieldLen {
		return p, nil, nil, fmt.Errorf("%w: bad key", ErrMalformedHash)
	}
	return p, salt, key, nil
}

// paramValue parses "name=N" with 1 <= N <= limit.
func paramValue(field, name string, limit uint64) (uint32, error) {
	v, ok := strings.CutPrefix(field, name+"=")
	if !ok {
		return 0, fmt.Errorf("want parameter %s", name)
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n < 1 || n > limit {
		return 0, fmt.Errorf("parameter %s out of range", name)
	}
	return uint32(n), nil
}
