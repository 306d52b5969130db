-- +goose Up
-- The process that claimed the row last (Ledger.Hold's key): while that
-- process lives it holds an advisory lock of the same key, and once it is
-- gone another claim may take the row over without waiting out the lease.
-- NULL for a claim made without a hold: only its lease ends it.
ALTER TABLE notifications.ledger ADD COLUMN holder bigint;
