-- Deletion countdown of Locked environments (issue 5): when an environment
-- was locked, in Unix nanoseconds; -9223372036854775808 (the zero time)
-- while it is not Locked.
ALTER TABLE environments ADD COLUMN locked_at INTEGER NOT NULL DEFAULT -9223372036854775808;
