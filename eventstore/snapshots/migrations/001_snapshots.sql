-- +goose Up
-- The newest snapshot of each aggregate stream, per format: a build that
-- folds differently (another format) keeps its own beside it, so two
-- builds running at once during a deploy do not pass over each other's.
CREATE TABLE snapshots.snapshots (
    stream_id text NOT NULL,
    format    integer NOT NULL,
    version   bigint NOT NULL,
    commit    bigint NOT NULL,
    prepare   bigint NOT NULL,
    data      bytea NOT NULL,
    saved_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, format)
);
