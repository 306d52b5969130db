-- +goose Up
-- One row per (event, template): the record that makes the notifier send
-- one email per event even when Kafka delivers it again. key is
-- event_id || ':' || template; its unique index is what Claim relies on.
CREATE TABLE notifications.ledger (
    id          uuid PRIMARY KEY,
    key         text NOT NULL UNIQUE,
    user_id     uuid NOT NULL,
    event_id    uuid NOT NULL,
    event_type  text NOT NULL,
    template    text NOT NULL,
    channel     text NOT NULL DEFAULT 'email' CHECK (channel IN ('email')),
    recipient   text NOT NULL,
    subject     text NOT NULL,
    message_id  text NOT NULL,
    status      text NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'retrying', 'failed')),
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL DEFAULT now()
);

-- The history pages: all notifications, or one user's, newest first.
CREATE INDEX ledger_created_idx ON notifications.ledger (created_at DESC, id DESC);
CREATE INDEX ledger_user_created_idx ON notifications.ledger (user_id, created_at DESC, id DESC);
