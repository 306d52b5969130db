# eventshop. `make run` starts the system locally; `make test` runs every test.
GO ?= go
GOTEST_FLAGS ?= -race -count=1 -timeout 30m -p 1
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: run test chaos bench bench-catalog load genlog fuzz-api build lint services clean-testdbs

## run: start eventshop locally on http://127.0.0.1:8080
run: services-run build
	bin/eventshop serve

## test: every test, with the race detector, against real PostgreSQL and Redis
test:
	@scripts/services.sh --cc
	$(GO) test $(GOTEST_FLAGS) ./...

## chaos: the fault-injection suite: a private PostgreSQL and Redis,
## eventshop as a child process under an order load, and one fault per
## scenario (kill -9, PostgreSQL stopped, Redis killed, SIGTERM with a slow
## client, rebuilds under load, a crash between charging a card and
## recording it), each followed by the invariants' checks; its binary has
## failpoints (-tags failpoints), the one `make build` ships has none
chaos: services
	CGO_ENABLED=0 $(GO) build -trimpath -tags failpoints -o bin/eventshop-failpoints ./cmd/eventshop
	$(GO) run ./tests/chaos/chaos -eventshop bin/eventshop-failpoints

## bench: event store throughput next to raw PostgreSQL baselines, then
## place-order commands/s and latency next to the store's raw append rate,
## then the read side (rebuilds, projection lag, read routes, authenticated
## reads) next to raw ReadAll, subscription and driver baselines and to the
## routes without authentication; each read-side case runs once; then mails
## sent over kept SMTP connections next to a connection each
bench: services
	$(GO) test -run '^$$' -bench . -benchtime 3s -timeout 30m ./eventstore/postgres/
	$(GO) test -run '^$$' -bench . -benchtime 2s -timeout 30m ./commands/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./benchmarks/
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./internal/services/mail/

## fuzz-api: the OpenAPI-driven fuzzer (TestAPIFuzz, 3,000 requests in
## `make test`) for FUZZ_REQUESTS requests: no 5xx, every answer as
## docs/openapi.yaml says; a new seed each run (printed), FUZZ_SEED=N
## repeats one; `make test` always runs seed 1
FUZZ_REQUESTS ?= 100000
FUZZ_SEED ?= $(shell date +%s%N)
fuzz-api: services
	FUZZ_API_REQUESTS=$(FUZZ_REQUESTS) FUZZ_API_SEED=$(FUZZ_SEED) $(GO) test -count=1 -v -timeout 3h -run '^TestAPIFuzz$$' ./cmd/eventshop/

## genlog: write a realistic log of EVENTS events (users, a catalogue, orders
## in every status, one hot product) straight into the event store of
## GENLOG_DATABASE (the local run's by default; created if missing), for
## measuring start-up and rebuilds against a long history (README,
## "Long histories")
EVENTS ?= 1000000
GENLOG_DATABASE ?= eventshop
genlog:
	@scripts/services.sh $(GENLOG_DATABASE)
	CGO_ENABLED=0 $(GO) build -o bin/genlog ./tests/genlog/genlog
	bin/genlog -events $(EVENTS) -store "postgres://postgres@127.0.0.1:5432/$(GENLOG_DATABASE)?sslmode=disable"

## bench-catalog: the catalogue's reads at 100, 10,000 and 100,000 products
## (CATALOG_SIZES=100,5000 picks others; CATALOG_MONGO_MAX=10000 also reads
## products from the MongoDB documents up to that size), each next to the
## same query through the driver
bench-catalog: services
	$(GO) test -run '^$$' -bench BenchmarkCatalog -benchtime 1x -timeout 60m ./benchmarks/

## load: the load test (README, "Load testing"): RATE arrivals/s of the
## MIX (shoppers, the default, or orders: every arrival places, pays and
## reads back an order) for DURATION against a PRODUCTS-product catalogue, at TARGET,
## or, when TARGET is unset, at an eventshop of its own (database
## eventshop_load, per-IP limits off) started for the run; STEP=1 raises the
## rate by steps (STEP_START, STEP_BY, STEP_MAX, STEP_DURATION) until a goal
## breaks and reports the knee; FRESH=1 drops its own database and data
## directory first (what earlier runs left costs the next one); the report
## goes to OUT
TARGET ?=
FRESH ?=
RATE ?= 1000
MIX ?= shoppers
DURATION ?= 60s
PRODUCTS ?= 5000
STEP ?=
OUT ?= .data/load-report
load: build
	@if [ -z "$(TARGET)" ] && [ -n "$(FRESH)" ]; then \
		psql -h "$${PGHOST:-127.0.0.1}" -p "$${PGPORT:-5432}" -U postgres -d postgres -qc 'DROP DATABASE IF EXISTS eventshop_load WITH (FORCE)' && \
		rm -rf .data/load-server; fi
	@[ -n "$(TARGET)" ] || scripts/services.sh eventshop_load
	CGO_ENABLED=0 $(GO) build -o bin/loadgen ./tests/load/loadgen
	bin/loadgen -rate $(RATE) -mix $(MIX) -duration $(DURATION) -products $(PRODUCTS) -out $(OUT) \
		$(if $(TARGET),-target $(TARGET)) $(if $(STEP),-step) \
		$(if $(STEP_START),-step-start $(STEP_START)) $(if $(STEP_BY),-step-by $(STEP_BY)) \
		$(if $(STEP_MAX),-step-max $(STEP_MAX)) $(if $(STEP_DURATION),-step-duration $(STEP_DURATION)) $(LOAD_FLAGS)

## build: a static binary in bin/eventshop
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/eventshop ./cmd/eventshop

## lint: go vet and staticcheck
lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## services: make sure PostgreSQL and Redis are up (installs them on Debian as root)
services:
	@scripts/services.sh

services-run:
	@scripts/services.sh eventshop

## clean-testdbs: drop test databases left behind by killed test runs
clean-testdbs:
	@psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'eventshop\_test\_%'" \
		| while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE \"$$db\" WITH (FORCE)"; done
