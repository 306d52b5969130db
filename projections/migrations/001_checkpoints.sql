-- +goose Up
-- One row per projection: the position of the last event it applied,
-- written in the same transaction as the projection's rows.
CREATE TABLE projections.checkpoints (
    name       text PRIMARY KEY,
    commit     bigint NOT NULL,
    prepare    bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
