package auth

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

func TestPasswordRoundTrip(t *testing.T) {
	h1, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	h2, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}

	owasp := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	for _, h := range []string{h1, h2} {
		if !owasp.MatchString(h) {
			t.Errorf("hash %q is not argon2id with OWASP parameters, 16-byte salt, 32-byte key", h)
		}
	}
	if h1 == h2 {
		t.Error("two hashes of one password are equal: salt not random")
	}
	if ok, err := VerifyPassword(h1, "correct horse battery staple"); !ok || err != nil {
		t.Errorf("right password: %v, %v", ok, err)
	}
	if ok, err := VerifyPassword(h1, "correct horse battery stapler"); ok || err != nil {
		t.Errorf("wrong password: %v, %v; want false, nil", ok, err)
	}
	if NeedsRehash(h1) {
		t.Error("fresh hash needs a rehash")
	}
}

func TestVerifyPasswordOtherParameters(t *testing.T) {
	// m=64 KiB, t=1, p=2, 24-byte key: parameters come from the string.
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte("secret"), salt, 1, 64, 2, 24)
	h := encodeHash(argonParams{memory: 64, time: 1, threads: 2}, salt, key)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=2$") {
		t.Fatalf("hash = %q", h)
	}
	if ok, err := VerifyPassword(h, "secret"); !ok || err != nil {
		t.Errorf("right password: %v, %v", ok, err)
	}
	if ok, err := VerifyPassword(h, "Secret"); ok || err != nil {
		t.Errorf("wrong password: %v, %v; want false, nil", ok, err)
	}
	if !NeedsRehash(h) {
		t.Error("hash with old parameters does not need a rehash")
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	const salt, key = "MDEyMzQ1Njc4OWFiY2RlZg", "wq0Nvm4DYDhSkzdnVp/Jjku6B9AUNbsBTPpbQZ8SbFk"
	cases := map[string]string{
		"empty":            "",
		"plain text":       "hunter2",
		"bcrypt":           "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i":          "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
		"old version":      "$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key,
		"no version":       "$argon2id$m=19456,t=2,p=1$" + salt + "$" + key,
		"params reordered": "$argon2id$v=19$t=2,m=19456,p=1$" + salt + "$" + key,
		"missing p":        "$argon2id$v=19$m=19456,t=2$" + salt + "$" + key,
		"m not a number":   "$argon2id$v=19$m=lots,t=2,p=1$" + salt + "$" + key,
		"m zero":           "$argon2id$v=19$m=0,t=2,p=1$" + salt + "$" + key,
		"m huge":           "$argon2id$v=19$m=4294967295,t=2,p=1$" + salt + "$" + key,
		"m under 8p":       "$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key,
		"t zero":           "$argon2id$v=19$m=19456,t=0,p=1$" + salt + "$" + key,
		"p zero":           "$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + key,
		"p over 255":       "$argon2id$v=19$m=19456,t=2,p=256$" + salt + "$" + key,
		"negative t":       "$argon2id$v=19$m=19456,t=-2,p=1$" + salt + "$" + key,
		"salt not base64":  "$argon2id$v=19$m=19456,t=2,p=1$!!!!$" + key,
		"salt padded":      "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "==$" + key,
		"salt too short":   "$argon2id$v=19$m=19456,t=2,p=1$MDEy$" + key,
		"key too short":    "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$MDEyMzQ1",
		"no key":           "$argon2id$v=19$m=19456,t=2,p=1$" + salt,
		"extra segment":    "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "$x",
		"leading text":     "x$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			ok, err := VerifyPassword(h, "secret")
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Errorf("VerifyPassword = %v, %v; want false, ErrMalformedHash", ok, err)
			}
			if !NeedsRehash(h) {
				t.Error("malformed hash does not need a rehash")
			}
		})
	}
}

func TestDummyHashMatchesParameters(t *testing.T) {
	// DummyVerify only costs what a real check costs if its hash uses the
	// parameters HashPassword uses now.
	if NeedsRehash(dummyHash) {
		t.Fatal("dummyHash is malformed or uses other parameters than HashPassword")
	}
	if ok, err := VerifyPassword(dummyHash, "anything"); ok || err != nil {
		t.Fatalf("VerifyPassword(dummyHash) = %v, %v; want false, nil", ok, err)
	}
	DummyVerify("anything")
}
