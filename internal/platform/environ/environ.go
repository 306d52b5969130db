// Package environ reads a process's configuration from environment
// variables: defaults, typed values, NAME_FILE secrets, and one error
// that names every variable that is wrong, never a value.
package environ

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Reader reads variables, collecting what is wrong with them.
type Reader struct {
	getenv func(string) string
	errs   []string
}

// New reads from getenv, in which any variable NAME may instead be given
// as NAME_FILE, the path of a file holding the value (trailing newlines
// dropped): Docker and Kubernetes secrets are mounted as files. Setting
// both, or a file that cannot be read, is an error naming the variable.
func New(getenv func(string) string) *Reader {
	r := &Reader{}
	r.getenv = func(key string) string {
		path := strings.TrimSpace(getenv(key + "_FILE"))
		if path == "" {
			return getenv(key)
		}
		if getenv(key) != "" {
			r.Fail(key + " and " + key + "_FILE are both set; set one")
			return ""
		}
		b, err := os.ReadFile(path)
		if err != nil {
			r.Fail(key + "_FILE: " + err.Error())
			return ""
		}
		return strings.TrimRight(string(b), "\r\n")
	}
	return r
}

// Fail records what is wrong, as "NAME: what".
func (r *Reader) Fail(msg string) { r.errs = append(r.errs, msg) }

// Err is every failure so far, or nil.
func (r *Reader) Err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return fmt.Errorf("configuration: %s", strings.Join(r.errs, "; "))
}

// Raw is key as it is set, untrimmed: for secrets.
func (r *Reader) Raw(key string) string { return r.getenv(key) }

// Get is key trimmed, or def when it is empty.
func (r *Reader) Get(key, def string) string {
	if v := strings.TrimSpace(r.getenv(key)); v != "" {
		return v
	}
	return def
}

// Bool is key equal to "true".
func (r *Reader) Bool(key string) bool { return r.Get(key, "false") == "true" }

// Duration is a positive duration.
func (r *Reader) Duration(key, def string) time.Duration {
	d, err := time.ParseDuration(r.Get(key, def))
	if err != nil || d <= 0 {
		r.Fail(key + ": want a positive duration such as " + def)
	}
	return d
}

// DurationOrOff is a duration where 0 turns the feature off.
func (r *Reader) DurationOrOff(key, def string) time.Duration {
	d, err := time.ParseDuration(r.Get(key, def))
	if err != nil || d < 0 {
		r.Fail(key + ": want a duration such as " + def + ", or 0 for none")
	}
	return d
}

// Int is a positive whole number.
func (r *Reader) Int(key string, def int) int {
	n, err := strconv.Atoi(r.Get(key, strconv.Itoa(def)))
	if err != nil || n <= 0 {
		r.Fail(fmt.Sprintf("%s: want a positive whole number such as %d", key, def))
	}
	return n
}

// Limit is a whole number where 0 turns the limit off.
func (r *Reader) Limit(key string, def int) int {
	n, err := strconv.Atoi(r.Get(key, strconv.Itoa(def)))
	if err != nil || n < 0 {
		r.Fail(fmt.Sprintf("%s: want a whole number such as %d, or 0 for no limit", key, def))
	}
	return n
}

// List is a comma-separated list, each item trimmed, empty ones dropped.
func (r *Reader) List(key string) []string {
	var out []string
	for _, v := range strings.Split(r.Get(key, ""), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// RedactURL shows a connection URL without its password, in the user
// part or as a parameter, for logs and errors; what does not parse as a
// URL with a scheme is not shown at all.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.Host == "" {
		return "(not a URL)"
	}
	q := u.Query()
	for k := range q {
		lk := strings.ToLower(k)
		for _, secret := range []string{"password", "secret", "token", "authmechanismproperties"} {
			if strings.Contains(lk, secret) {
				q.Set(k, "xxxxx")
			}
		}
	}
	u.RawQuery = q.Encode()
	return u.Redacted()
}
