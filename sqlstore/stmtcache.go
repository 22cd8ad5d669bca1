package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync/atomic"
)

// DefaultStatementCache is how many prepared statements CachingConnector
// keeps per connection. The store's queries are fixed strings (a few
// hundred at most, with the list filters' combinations), so the cache
// holds the hot ones long before it fills; a query met after it is full
// runs unprepared, as it would without the cache.
const DefaultStatementCache = 512

// CachingConnector wraps a driver's connector so that each connection
// prepares a query the first time it runs it and reuses the prepared
// statement after that. database/sql prepares, runs and discards a
// statement for every ExecContext and QueryContext on a driver that
// implements them; on SQLite, parsing and planning was a fifth of a row
// write's CPU (docs/benchmarks.md, "Issue 12"). A *sql.Stmt can't do this
// for the store: preparing one takes a connection from the pool, and the
// write pool's only connection is inside the transaction that needs it.
//
// The cache is per connection, as prepared statements are, and needs no
// lock: database/sql uses a connection from one goroutine at a time. A
// statement still in use (its rows not yet closed) is not handed out
// again; the query then runs unprepared. PostgreSQL needs none of this:
// pgx keeps its own per-connection statement cache (see the postgres
// package).
//
// The wrapped driver's connections must implement driver.ConnPrepareContext,
// driver.ExecerContext, driver.QueryerContext and driver.ConnBeginTx.
func CachingConnector(c driver.Connector, size int) driver.Connector {
	if size <= 0 {
		size = DefaultStatementCache
	}
	return &cachingConnector{inner: c, size: size}
}

type cachingConnector struct {
	inner    driver.Connector
	size     int
	prepared atomic.Int64
}

func (c *cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(cachableConn)
	if !ok {
		conn.Close()
		return nil, errors.New("sqlstore: the driver's connections can't run prepared statements with a context")
	}
	return &cachingConn{inner: inner, size: c.size, stmts: map[string]*cachedStmt{}, prepared: &c.prepared}, nil
}

// PreparedStatements returns how many statements the connections of c, a
// CachingConnector, have prepared; 0 for another connector. The tests use
// it to show that statements are reused.
func PreparedStatements(c driver.Connector) int64 {
	if cc, ok := c.(*cachingConnector); ok {
		return cc.prepared.Load()
	}
	return 0
}

func (c *cachingConnector) Driver() driver.Driver { return c.inner.Driver() }

// cachableConn is what a connection must offer to be wrapped.
type cachableConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.ConnBeginTx
}

// cachingConn is one connection and its prepared statements.
type cachingConn struct {
	inner cachableConn
	size  int
	stmts map[string]*cachedStmt
	// prepared counts statements prepared, for the tests.
	prepared *atomic.Int64
}

type cachedStmt struct {
	ds   driver.Stmt
	busy bool // rows of it are open
}

// stmt returns query's prepared statement, preparing it if it is new; nil
// if it can't be used now (in use, or the cache is full), and the query
// should run unprepared.
func (c *cachingConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	if s, ok := c.stmts[query]; ok {
		if s.busy {
			return nil, nil
		}
		return s, nil
	}
	if len(c.stmts) >= c.size {
		return nil, nil
	}
	ds, err := c.inner.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	_, okE := ds.(driver.StmtExecContext)
	_, okQ := ds.(driver.StmtQueryContext)
	if !okE || !okQ {
		ds.Close()
		return nil, nil
	}
	c.prepared.Add(1)
	s := &cachedStmt{ds: ds}
	c.stmts[query] = s
	return s, nil
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.inner.ExecContext(ctx, query, args)
	}
	return s.ds.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.inner.QueryContext(ctx, query, args)
	}
	rows, err := s.ds.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	s.busy = true
	return &cachedRows{Rows: rows, s: s}, nil
}

// cachedRows frees its statement for the next query when closed.
type cachedRows struct {
	driver.Rows
	s *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.s.busy = false
	return err
}

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) { return c.inner.Prepare(query) }

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.inner.PrepareContext(ctx, query)
}

func (c *cachingConn) Begin() (driver.Tx, error) { //nolint:staticcheck // required by driver.Conn
	return c.inner.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner.BeginTx(ctx, opts)
}

// Close finalizes the cached statements, then closes the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for q, s := range c.stmts {
		errs = append(errs, s.ds.Close())
		delete(c.stmts, q)
	}
	return errors.Join(append(errs, c.inner.Close())...)
}

func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachingConn) IsValid() bool {
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

var (
	_ driver.ExecerContext      = (*cachingConn)(nil)
	_ driver.QueryerContext     = (*cachingConn)(nil)
	_ driver.ConnPrepareContext = (*cachingConn)(nil)
	_ driver.ConnBeginTx        = (*cachingConn)(nil)
	_ driver.Pinger             = (*cachingConn)(nil)
	_ driver.SessionResetter    = (*cachingConn)(nil)
	_ driver.Validator          = (*cachingConn)(nil)
)
