-- The statements of sql/executions.sql that PostgreSQL needs written otherwise, by the same names.

-- A listing's statements read one snapshot.
-- name: begin_read
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
