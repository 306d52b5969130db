# syntax=docker/dockerfile:1.7
#
# eventshop: one static binary on a distroless base, run as a non-root user.
#
#   docker build -t eventshop:local .
#   docker run --rm eventshop:local help
#
# The image runs any subcommand: docker-compose.yml and deploy/k8s pick
# writeapi, readapi, projector, notifier or migrate. The default, serve, is
# the local all-in-one run (it needs DATABASE_URL and REDIS_URL).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
# A static binary (no cgo: distroless/static has no libc), without paths
# of the build machine or debug symbols.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags='-s -w' -o /out/eventshop ./cmd/eventshop

# distroless/static: CA certificates, tzdata and /etc/passwd with the
# nonroot user (65532), and nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="eventshop" \
      org.opencontainers.image.description="An event-sourced e-commerce backend"
COPY --from=build /out/eventshop /eventshop
USER nonroot:nonroot
# Listen on every interface of the container (the binary's default is
# 127.0.0.1:8080); the local run keeps its data in a writable place.
ENV HTTP_ADDR=:8080 \
    DATA_DIR=/tmp/eventshop
EXPOSE 8080
# The image has no shell or curl: the binary asks its own /readyz.
# (docker-compose.yml turns this off for the one-shot commands.)
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
    CMD ["/eventshop", "healthcheck"]
ENTRYPOINT ["/eventshop"]
CMD ["serve"]
