-- +goose Up
-- The durable view of a worker that is not a projection, such as the
-- order process manager: the position of the log its view reflects, and
-- the view's entries by key, written in one transaction, so that a start
-- or a takeover reads only the events after the position.
CREATE TABLE projections.worker_checkpoints (
    worker     text PRIMARY KEY,
    commit     bigint NOT NULL,
    prepare    bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE projections.worker_entries (
    worker text NOT NULL,
    key    text NOT NULL,
    data   jsonb NOT NULL,
    PRIMARY KEY (worker, key)
);
