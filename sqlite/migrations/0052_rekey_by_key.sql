-- The re-key walks an environment's rows by primary key, skipping those
-- already on the new epoch (issue 12). An index on epoch made every
-- re-sealed row move an index entry as well as rewrite its record; the
-- per-environment counts by epoch (EpochCounts) read the environment's
-- rows by its primary-key prefix instead. docs/benchmarks.md has the
-- figures.
DROP INDEX IF EXISTS data_rows_by_epoch;
