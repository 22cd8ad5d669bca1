package postgres_test

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"

	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.OpenPostgres)
}

// TestReplicasMigrateTogether opens one empty database from several
// replicas at once: the advisory lock must let exactly one apply each
// migration, and every replica start.
func TestReplicasMigrateTogether(t *testing.T) {
	db := storetest.NewPostgresDatabase(t)
	ctx := context.Background()
	const replicas = 4
	stores := make([]*sqlstore.Store, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = postgres.Open(ctx, db.DSN)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Open: %v", i, err)
		}
		defer stores[i].Close()
	}
	var n, distinct int
	err := stores[0].DB().QueryRowContext(ctx, `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&n, &distinct)
	if err != nil {
		t.Fatal(err)
	}
	if n != distinct || n == 0 {
		t.Errorf("schema_migrations has %d rows for %d versions", n, distinct)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	s, db := storetest.OpenPostgresAt(t)
	ctx := context.Background()
	if _, err := s.(*sqlstore.Store).DB().ExecContext(ctx, `INSERT INTO schema_migrations VALUES (9999, '9999_future', 0)`); err != nil {
		t.Fatal(err)
	}
	if s2, err := postgres.Open(ctx, db.DSN); err == nil {
		s2.Close()
		t.Fatalf("Open of a database at a newer schema succeeded")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a newer schema: %v, want an error saying so", err)
	}
}

// TestMigrationVaultTenant: migration 0020 moves a vault that names a
// tenant other than its subscription's to the subscription's tenant.
func TestMigrationVaultTenant(t *testing.T) {
	s, db := storetest.OpenPostgresAt(t)
	ctx := context.Background()
	check := storetest.SeedVaultTenants(t, s)
	if _, err := s.(*sqlstore.Store).DB().ExecContext(ctx, `DELETE FROM schema_migrations WHERE version = 20`); err != nil {
		t.Fatal(err)
	}
	s2, err := postgres.Open(ctx, db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	check(t, s2)
}

func TestOpenErrorsHideThePassword(t *testing.T) {
	ctx := context.Background()
	for _, dsn := range []string{
		"postgres://keyhold:hunter2-secret@127.0.0.1:1/keyhold?sslmode=disable",
		"host=127.0.0.1 port=1 user=keyhold password=hunter2-secret sslmode=disable",
		"postgres://keyhold:hunter2-secret@127.0.0.1:notaport/x",
	} {
		s, err := postgres.Open(ctx, dsn)
		if err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open error %q shows the password", err)
		}
	}
}

// TestStatementsPreparedOnce shows that the store's connections prepare a
// query once and reuse it (pgx's statement cache, which Open keeps on),
// instead of parsing and planning it on every run.
func TestStatementsPreparedOnce(t *testing.T) {
	s, _ := storetest.OpenPostgresAt(t)
	ctx := context.Background()
	conn, err := s.(*sqlstore.Store).DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const q = `SELECT count(*) FROM environments WHERE id = $1`
	for i := range 20 {
		var n int
		if err := conn.QueryRowContext(ctx, q, "env-"+strings.Repeat("x", i)).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	var prepared int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM pg_prepared_statements WHERE statement = `+"'"+q+"'").Scan(&prepared); err != nil {
		t.Fatal(err)
	}
	if prepared != 1 {
		t.Fatalf("the connection holds %d prepared statements of a query it ran 20 times, want 1", prepared)
	}
}

// TestPoolKeepsItsConnections: a burst that uses every connection of the
// pool leaves them all open and idle for the next one, none closed (and
// so none connected and its statements prepared again).
func TestPoolKeepsItsConnections(t *testing.T) {
	db := storetest.NewPostgresDatabase(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pool := s.DB()
	n := pool.Stats().MaxOpenConnections
	conns := make([]*sql.Conn, n)
	for i := range conns {
		if conns[i], err = pool.Conn(ctx); err != nil {
			t.Fatal(err)
		}
		if err := conns[i].PingContext(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	if st := pool.Stats(); st.MaxIdleClosed != 0 || st.Idle != n {
		t.Fatalf("after a burst over all %d connections: %d idle, %d closed as surplus idle; want %d idle, none closed", n, st.Idle, st.MaxIdleClosed, n)
	}
}

// TestMigrationRekeyByKey: migration 0052, on a database holding rows,
// drops the index on data_rows' epoch, leaves room in its pages for HOT
// updates (fillfactor) and adds the re-key's walk; the rows keep their
// contents, counts and walk.
func TestMigrationRekeyByKey(t *testing.T) {
	s, db := storetest.OpenPostgresAt(t)
	ctx := context.Background()
	ids := storetest.SeedRekeyRows(t, s, 2, 1500)
	// The schema as it was before 0052.
	for _, q := range []string{
		"CREATE INDEX data_rows_by_epoch ON data_rows (env_id, epoch, table_name, id)",
		"ALTER TABLE data_rows RESET (fillfactor)",
		"DROP FUNCTION data_rows_of_epoch",
		"DELETE FROM schema_migrations WHERE version = 52",
	} {
		if _, err := s.(*sqlstore.Store).DB().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if got := storetest.EpochIndexes(t, s); len(got) != 1 {
		t.Fatalf("before the migration, indexes holding epoch: %v", got)
	}
	s2, err := postgres.Open(ctx, db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := storetest.EpochIndexes(t, s2); len(got) != 0 {
		t.Errorf("after the migration, indexes of data_rows holding epoch: %v, want none", got)
	}
	var opts string
	if err := s2.DB().QueryRowContext(ctx, `SELECT COALESCE(array_to_string(reloptions, ','), '') FROM pg_class WHERE relname = 'data_rows'`).Scan(&opts); err != nil {
		t.Fatal(err)
	}
	if opts != "fillfactor=50" {
		t.Errorf("data_rows' options: %q, want fillfactor=50", opts)
	}
	storetest.CheckRekeyRows(t, s2, ids, 1500)
}
