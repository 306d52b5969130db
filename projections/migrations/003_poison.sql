-- +goose Up
-- The events a projection could not apply, and those of the same stream
-- waiting behind them (policy "park"), or the one it stopped on (policy
-- "halt"); and the events an admin chose to skip, kept as the record of
-- that decision. A rebuild fills a list of its own (shadow) that replaces
-- the live one when the rebuilt model is swapped in.
CREATE TABLE projections.parked (
    projection   text NOT NULL,
    shadow       boolean NOT NULL DEFAULT false,
    event_id     uuid NOT NULL,
    stream_id    text NOT NULL,
    version      bigint NOT NULL,
    type         text NOT NULL,
    commit       bigint NOT NULL,
    prepare      bigint NOT NULL,
    -- parked: failed or waiting behind one that failed; halted: the event
    -- a halted projection stopped on; skipped: passed over by an admin.
    status       text NOT NULL CHECK (status IN ('parked', 'halted', 'skipped')),
    -- The last failure; empty for an event that only waits behind another.
    error        text NOT NULL DEFAULT '',
    attempts     integer NOT NULL DEFAULT 0,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    parked_at    timestamptz NOT NULL DEFAULT now(),
    -- What an admin asked for and the active runner has yet to do.
    action              text CHECK (action IN ('retry', 'skip')),
    action_by           text,
    action_reason       text,
    action_requested_at timestamptz,
    skipped_by   text,
    skip_reason  text,
    skipped_at   timestamptz,
    PRIMARY KEY (projection, shadow, event_id)
);
CREATE INDEX parked_stream_idx ON projections.parked (projection, shadow, stream_id, version);

-- What a report says beyond the checkpoint: how exact the lag is, the
-- projection's policy, how many events are parked, and how a rebuild
-- went.
ALTER TABLE projections.checkpoints
    ADD COLUMN lag_exact       boolean NOT NULL DEFAULT false,
    ADD COLUMN policy          text NOT NULL DEFAULT 'park',
    ADD COLUMN rebuild_applied bigint NOT NULL DEFAULT 0,
    ADD COLUMN rebuild_parked  bigint NOT NULL DEFAULT 0,
    ADD COLUMN rebuild_error   text NOT NULL DEFAULT '';

-- What a worker that is not a projection (the order process manager) is
-- failing on, one entry per item (an order): kept until the item's next
-- action succeeds, for admins to see.
CREATE TABLE projections.failures (
    worker     text NOT NULL,
    key        text NOT NULL,
    stream_id  text NOT NULL DEFAULT '',
    event_id   uuid,
    action     text NOT NULL DEFAULT '',
    error      text NOT NULL,
    attempts   integer NOT NULL DEFAULT 1,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker, key)
);
