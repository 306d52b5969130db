-- +goose Up
-- Requeue finds the rows of one event (eventshop dlq replay).
CREATE INDEX ledger_event_idx ON notifications.ledger (event_id);
