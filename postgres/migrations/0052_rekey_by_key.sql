-- The re-key walks an environment's rows by primary key, skipping those
-- already on the new epoch (issue 12). With no index on epoch, and room
-- left in each heap page (fillfactor), a re-sealed row's new version is a
-- HOT update: written in the same page, no index entry added. The
-- fillfactor applies to pages written from now on; pages already full get
-- the room when the table is rewritten (VACUUM FULL, docs/operations.md).
-- The per-environment counts by epoch (EpochCounts) read the
-- environment's rows by its primary-key prefix instead. docs/benchmarks.md
-- has the figures.
DROP INDEX IF EXISTS data_rows_by_epoch;
ALTER TABLE data_rows SET (fillfactor = 50);

-- The re-key's walk of an old epoch: the next rows of epoch p_epoch after
-- (p_after_table, p_after_id) in key order, read by the primary key. The
-- planner, left to itself, can't see how many of an environment's rows
-- are on one epoch (no index on it, no statistics on a table just written
-- or restored), and then reads every row of the environment after the
-- cursor and sorts them, for every page: a re-key quadratic in the
-- environment (TestRekeyReadPlans). The settings, scoped to this function
-- (which is therefore never inlined), leave it the index scan in key
-- order, which stops after the page.
CREATE FUNCTION data_rows_of_epoch(p_env TEXT, p_epoch BIGINT, p_after_table TEXT, p_after_id TEXT, p_limit BIGINT)
RETURNS SETOF data_rows LANGUAGE sql STABLE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off
AS $$
	SELECT * FROM data_rows
	WHERE env_id = p_env AND (table_name, id) > (p_after_table, p_after_id) AND epoch = p_epoch
	ORDER BY table_name, id LIMIT p_limit
$$;
