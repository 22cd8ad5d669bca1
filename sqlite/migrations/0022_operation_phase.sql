-- Issue 9 (item 5): an operation's phase in its own column. Until now a
-- Running operation's phase was read out of other columns: rolling back
-- meant an error_code; paused meant no error_code and an error_msg that
-- begins 'Paused: '; never claimed meant version 1. phase now says it
-- ('Queued', 'Running', 'Paused' or 'RollingBack'; '' once the operation
-- ended), and phase_reason says why it is paused (the text after
-- 'Paused: ') or rolling back (the failure's message). error_msg keeps
-- what the API shows, as before.
ALTER TABLE operations ADD COLUMN phase TEXT NOT NULL DEFAULT '';
ALTER TABLE operations ADD COLUMN phase_reason TEXT NOT NULL DEFAULT '';

-- The backfill reads the old encodings in the order the runner did:
-- an error code first (rolling back, whatever the message says), then the
-- pause prefix (compared exactly: LIKE ignores case in SQLite), then a
-- version that no claim has incremented.
UPDATE operations SET phase = 'RollingBack', phase_reason = error_msg
	WHERE state = 'Running' AND error_code <> '';
UPDATE operations SET phase = 'Paused', phase_reason = substr(error_msg, 9)
	WHERE state = 'Running' AND error_code = '' AND substr(error_msg, 1, 8) = 'Paused: ';
UPDATE operations SET phase = 'Queued'
	WHERE state = 'Running' AND phase = '' AND version = 1;
UPDATE operations SET phase = 'Running'
	WHERE state = 'Running' AND phase = '';
