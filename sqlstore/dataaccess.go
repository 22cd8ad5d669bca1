package sqlstore

import (
	"context"

	"github.com/keyhold/keyhold"
)

var _ keyhold.DataAccessTx = (*tx)(nil)

// dataAccessQuery reads an environment with its caller's membership and its
// running operation. Both subqueries are index lookups (the members'
// primary key; operations_one_running, unique per target while Running).
// ForShare locks only the environment's row: the subqueries' tables are
// not in the FROM clause.
const dataAccessQuery = `SELECT ` + environmentCols + `,
	EXISTS (SELECT 1 FROM environment_members m WHERE m.env_id = environments.id AND m.principal_id = ?),
	COALESCE((SELECT o.id FROM operations o WHERE o.target = environments.id AND o.state = 'Running'), ''),
	COALESCE((SELECT o.kind FROM operations o WHERE o.target = environments.id AND o.state = 'Running'), '')
	FROM environments WHERE id = ?`

// DataAccess returns an environment, whether principalID is its member,
// and its running operation, in one query (keyhold.DataAccessTx); with
// forWrite, it holds the environment's row as EnvironmentForWrite does.
func (t *tx) DataAccess(ctx context.Context, envID, principalID string, forWrite bool) (*keyhold.DataAccess, error) {
	q := dataAccessQuery
	if forWrite {
		q += t.s.d.ForShare
	}
	a, err := get(t, ctx, "read data access", func(sc scanner) (*keyhold.DataAccess, error) {
		a := &keyhold.DataAccess{}
		env, err := scanEnvironment(extraCols{sc, []any{boolCol{&a.Member}, &a.RunningOpID, &a.RunningOpKind}})
		a.Env = env
		return a, err
	}, q, principalID, envID)
	if err != nil {
		return nil, notFound(err, envNotFound(envID))
	}
	return a, nil
}

// extraCols lets a row scanner read columns after the ones it knows.
type extraCols struct {
	sc    scanner
	extra []any
}

func (e extraCols) Scan(dest ...any) error { return e.sc.Scan(append(dest, e.extra...)...) }
