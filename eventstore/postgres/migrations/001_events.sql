-- +goose Up
-- The event log. UNIQUE (stream_id, version) is the concurrency guard;
-- (tx_id, id) is the global order, see read.go.
CREATE TABLE events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id          bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    event_id       uuid NOT NULL,
    stream_id      text NOT NULL,
    version        bigint NOT NULL CHECK (version >= 0),
    type           text NOT NULL,
    schema_version integer NOT NULL CHECK (schema_version >= 1),
    data           json NOT NULL,
    correlation_id text NOT NULL DEFAULT '',
    causation_id   text NOT NULL DEFAULT '',
    actor_id       text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);

CREATE INDEX events_global_order ON events (tx_id, id);
