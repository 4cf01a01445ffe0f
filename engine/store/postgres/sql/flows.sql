-- The statements of sql/flows.sql that PostgreSQL needs written otherwise, by the same names.

-- Held until the transaction ends: a second server saving the same flow waits, then reads what the
-- first stored (and stores no second revision of the same source).
-- name: lock_flow
SELECT pg_advisory_xact_lock(hashtextextended('tiercel flow ' || ? || '.' || ?, 0));
