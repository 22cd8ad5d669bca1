-- After an environment leaves an enterprise policy (unlink, swap, reset),
-- the spec asks that the policy's key and its grant be kept 30 days, not
-- the 28 a rotated-away version needs (issue 10, item 19). retain_until is
-- the latest end of retention any use of the version asked for, in Unix
-- nanoseconds; -9223372036854775808 (the zero time) for the uses recorded
-- before this column, which mean last_used_at + 28 days.
ALTER TABLE key_version_uses ADD COLUMN retain_until BIGINT NOT NULL DEFAULT -9223372036854775808;
