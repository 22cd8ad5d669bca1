package server

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// healthTimeout bounds /healthz's database probe: a database that takes
// longer to take a write is not one to send traffic to.
var healthTimeout = 2 * time.Second

// prober is a store that can check, cheaply and without committing, that
// it still takes writes (sqlstore.Store).
type prober interface {
	Probe(ctx context.Context) error
}

// storeHealth returns /healthz's check: the store must answer a read and
// take a (rolled back) write within healthTimeout. A read-only database,
// one that does not answer in time, or one that fails the probe makes the
// check fail with CodeServiceUnavailable and a reason the operator can act
// on; the cause goes to the log, not to the unauthenticated caller.
func storeHealth(store keyhold.Store) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, healthTimeout)
		defer cancel()
		var err error
		if p, ok := store.(prober); ok {
			err = p.Probe(ctx)
		} else {
			err = store.View(ctx, func(tx keyhold.Tx) error { _, err := tx.ListTenants(ctx); return err })
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
			return keyhold.Errorf(keyhold.CodeServiceUnavailable,
				"the database did not take a write within %s: it is locked or overloaded; see the server's log", healthTimeout).WithCause(err)
		case isReadOnly(err):
			return keyhold.Errorf(keyhold.CodeServiceUnavailable,
				"the database is read-only: make its file system (or the PostgreSQL server) writable again, then restart keyhold").WithCause(err)
		}
		return keyhold.Errorf(keyhold.CodeServiceUnavailable,
			"the database failed a quick check: see the server's log, and run keyhold doctor on the stopped server").WithCause(err)
	}
}

// isReadOnly tells whether err is a database refusing a write because it is
// read-only: SQLite's SQLITE_READONLY ("attempt to write a readonly
// database") or PostgreSQL's 25006 ("cannot execute INSERT in a read-only
// transaction").
func isReadOnly(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "readonly") || strings.Contains(s, "read-only") || strings.Contains(s, "read only")
}
