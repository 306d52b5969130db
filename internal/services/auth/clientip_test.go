package auth

import (
	"net/http/httptest"
	"testing"
)

func TestClientIP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remote string
		xff    []string
		trust  bool
		want   string
	}{
		{"remote address", "192.0.2.1:5555", nil, false, "192.0.2.1"},
		{"remote IPv6", "[2001:db8::1]:5555", nil, false, "2001:db8::1"},
		{"untrusted header ignored", "192.0.2.1:5555", []string{"203.0.113.7"}, false, "192.0.2.1"},
		{"trusted: the entry the proxy appended", "10.0.0.2:80", []string{"203.0.113.9, 198.51.100.4"}, true, "198.51.100.4"},
		{"trusted: last header line wins", "10.0.0.2:80", []string{"203.0.113.9", "198.51.100.4"}, true, "198.51.100.4"},
		{"trusted: port dropped", "10.0.0.2:80", []string{"198.51.100.4:4711"}, true, "198.51.100.4"},
		{"trusted: IPv6 entry", "10.0.0.2:80", []string{"2001:db8::7"}, true, "2001:db8::7"},
		{"trusted: no header", "10.0.0.2:80", nil, true, "10.0.0.2"},
		{"trusted: empty last entry", "10.0.0.2:80", []string{"203.0.113.9, "}, true, "10.0.0.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientIP(r, tc.trust); got != tc.want {
				t.Errorf("ClientIP = %q, want %q", got, tc.want)
			}
		})
	}
}
