package sqlstore_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestResealRowsPlan: on PostgreSQL, a re-key page's UPDATE reads only the
// page's rows of data_rows, also on a table that was never analyzed (rows
// just written, as after a restore). Every plan node over data_rows must
// produce at most a page of rows; the plain UPDATE … FROM unnest(…) that
// this statement replaced was planned there as a scan of the whole epoch.
func TestResealRowsPlan(t *testing.T) {
	s, ok := storetest.OpenPostgres(t).(*sqlstore.Store)
	if !ok {
		t.Fatal("the PostgreSQL store is not a *sqlstore.Store")
	}
	ctx := context.Background()
	const envID, total, page = "e1", 20000, 64
	now := time.Unix(1700000000, 0).UTC()
	if err := s.Update(ctx, func(tx keyhold.Tx) error {
		if err := tx.CreateTenant(ctx, &keyhold.Tenant{ID: "t1", DisplayName: "Tenant t1", CreatedAt: now}); err != nil {
			return err
		}
		if err := tx.CreateEnvironment(ctx, &keyhold.Environment{ID: envID, TenantID: "t1", DisplayName: "Env", Location: "europe",
			SKU: keyhold.SKUSandbox, Managed: true, State: keyhold.StateEnabled, KeyManagedBy: keyhold.KeyManagedByMicrosoft,
			Epoch: 1, CreatedBy: "u", CreatedAt: now, UpdatedAt: now}); err != nil {
			return err
		}
		rs := make([]*keyhold.RowRecord, total)
		for i := range rs {
			rs[i] = &keyhold.RowRecord{EnvID: envID, Table: "T", ID: fmt.Sprintf("r%06d", i), Epoch: 1, Version: 1,
				Ciphertext: make([]byte, 1024), UpdatedAt: now}
		}
		return tx.InsertRows(ctx, rs)
	}); err != nil {
		t.Fatal(err)
	}
	tables, ids := make([]string, page), make([]string, page)
	versions, epochs := make([]int64, page), make([]int64, page)
	cts := make([][]byte, page)
	for i := range page {
		tables[i], ids[i], versions[i], epochs[i], cts[i] = "T", fmt.Sprintf("r%06d", total/2+i), 1, 2, make([]byte, 1024)
	}
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() // EXPLAIN ANALYZE runs the update: undo it
	rows, err := tx.QueryContext(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "+sqlstore.Rebind(sqlstore.ResealRowsArrays),
		tables, ids, versions, epochs, cts, envID, int64(1))
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	actual := regexp.MustCompile(`actual rows=(\d+) loops=(\d+)`)
	scans := 0
	for _, line := range plan {
		if !strings.Contains(line, " on data_rows") {
			continue
		}
		scans++
		m := actual.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no row count in plan line %q:\n%s", line, strings.Join(plan, "\n"))
		}
		n, _ := strconv.Atoi(m[1])
		loops, _ := strconv.Atoi(m[2])
		if n*loops > page {
			t.Fatalf("a page of %d rows read %d rows of data_rows in one node (%q): the plan scans more than the page:\n%s",
				page, n*loops, strings.TrimSpace(line), strings.Join(plan, "\n"))
		}
	}
	if scans == 0 {
		t.Fatalf("no plan node over data_rows:\n%s", strings.Join(plan, "\n"))
	}
	if !strings.Contains(strings.Join(plan, "\n"), "Update on data_rows") {
		t.Fatalf("not an update of data_rows:\n%s", strings.Join(plan, "\n"))
	}
}
