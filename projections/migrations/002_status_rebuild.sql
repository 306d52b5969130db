-- +goose Up
-- What the active runner of each projection reports, so that any process
-- (a read API without runners) can show it, and a rebuild request that
-- any process can file for the active runner to pick up.
ALTER TABLE projections.checkpoints
    ADD COLUMN state        text NOT NULL DEFAULT 'stopped',
    ADD COLUMN lag_events   bigint NOT NULL DEFAULT -1,
    ADD COLUMN lag_ms       bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_error   text NOT NULL DEFAULT '',
    ADD COLUMN reported_at  timestamptz,
    ADD COLUMN rebuild_requested_at timestamptz,
    ADD COLUMN rebuild_started_at   timestamptz,
    ADD COLUMN rebuilt_at           timestamptz;
