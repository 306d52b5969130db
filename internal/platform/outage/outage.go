// Package outage tells a dependency's outage from other errors: a failure
// of the network, the connection, or the server (PostgreSQL, Redis) that
// says nothing about the request or the data, so that the request can be
// answered 503 and a worker can retry.
package outage

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
)

// Is reports whether err is a dependency's outage: a network or
// connection failure (refused, reset, cut mid-answer), a PostgreSQL
// connection that could not be made or is not safe to use, a PostgreSQL
// error of class 08 (connection), 53 (resources), 57 (operator
// intervention: a shutdown) or 58 (system), or a Redis client that is
// closed or has no connection to give.
func Is(err error) bool {
	var ne net.Error
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return false
	case errors.As(err, &ne), errors.As(err, &ce),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		pgconn.Timeout(err), pgconn.SafeToRetry(err),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout):
		return true
	case errors.As(err, &pe):
		switch pe.Code[:2] {
		case "08", "53", "57", "58":
			return true
		}
	}
	return false
}
