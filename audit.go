package keyhold

import (
	"context"
	"unicode/utf8"
)

// AuditSucceeded is the Result of an audit entry of a change that was made.
const AuditSucceeded = "Succeeded"

// MaxAuditDetail bounds an audit entry's Detail, in bytes: a detail may
// quote an error message or client input, and the audit log is kept for
// years.
const MaxAuditDetail = 1000

// Audit appends e in tx, the way every service writes its audit trail, so
// that the entry commits or rolls back with the change it records: At is
// stored in UTC, an empty Result is AuditSucceeded, and Detail is cut to
// MaxAuditDetail bytes on a rune boundary. It returns the entry as stored,
// with its ID.
func Audit(ctx context.Context, tx Tx, e AuditEntry) (*AuditEntry, error) {
	e.At = e.At.UTC()
	if e.Result == "" {
		e.Result = AuditSucceeded
	}
	if len(e.Detail) > MaxAuditDetail {
		n := MaxAuditDetail
		for n > 0 && !utf8.RuneStart(e.Detail[n]) {
			n--
		}
		e.Detail = e.Detail[:n]
	}
	if err := tx.AppendAudit(ctx, &e); err != nil {
		return nil, err
	}
	return &e, nil
}
