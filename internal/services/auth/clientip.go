package auth

import (
	"net"
	"net/http"
	"strings"
)

// ClientIP is the address of the caller, as the login throttling and the
// gateway's rate limits count it: the connection's remote address, or,
// with trustProxy, the last entry of the last X-Forwarded-For header. That
// entry is the one the proxy in front appended; any entry before it, and
// any header line before the last, came from the client and may be forged.
// So set trustProxy only when every request passes a proxy that appends to
// (or sets) X-Forwarded-For; otherwise a client picks its own address.
// A port, if present, is dropped; an empty last entry falls back to the
// remote address.
func ClientIP(r *http.Request, trustProxy bool) string {
	if trustProxy {
		if lines := r.Header.Values("X-Forwarded-For"); len(lines) > 0 {
			entries := strings.Split(lines[len(lines)-1], ",")
			if ip := withoutPort(strings.TrimSpace(entries[len(entries)-1])); ip != "" {
				return ip
			}
		}
	}
	return withoutPort(r.RemoteAddr)
}

// withoutPort drops the port of host:port (or [v6]:port); anything else,
// a bare IPv4 or IPv6 address included, is returned as it is.
func withoutPort(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
