package main

import (
	"context"
	"fmt"
	"io"

	"github.com/eventshop/eventshop/internal/edge"
)

// healthcheck asks the process listening on HTTP_ADDR for /readyz (or the
// path in args, such as /healthz) and succeeds on 200: the container
// health check of an image with no shell or curl.
func healthcheck(ctx context.Context, cfg config, args []string, stdout io.Writer) error {
	path := "/readyz"
	if len(args) > 0 {
		path = args[0]
	}
	if err := edge.Probe(ctx, cfg.HTTPAddr, path); err != nil {
		return fmt.Errorf("healthcheck of HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
