-- Events for tenant administrators and their webhook outbox (issue 5), and
-- tenant settings of customer-managed keys. Times are Unix nanoseconds;
-- -9223372036854775808 is the zero time.
CREATE TABLE events (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id TEXT COLLATE "C" NOT NULL,
	occurred_at BIGINT NOT NULL,
	kind TEXT NOT NULL,
	policy_id TEXT NOT NULL,
	env_id TEXT NOT NULL,
	audit_id BIGINT NOT NULL,
	summary TEXT NOT NULL,
	changes TEXT NOT NULL, -- JSON array of keyhold.VaultChange
	delivery TEXT NOT NULL,
	attempts INTEGER NOT NULL,
	next_attempt_at BIGINT NOT NULL,
	delivered_at BIGINT NOT NULL,
	last_error TEXT NOT NULL
);
CREATE INDEX events_by_tenant ON events (tenant_id, id);
CREATE INDEX events_pending ON events (next_attempt_at, id) WHERE delivery = 'Pending';

CREATE TABLE tenant_settings (
	tenant_id TEXT COLLATE "C" PRIMARY KEY,
	auto_reenable BOOLEAN NOT NULL,
	webhook_url TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	updated_by TEXT NOT NULL
);
