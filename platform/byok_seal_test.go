package platform

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// byokRows dumps the byok_keys table as the database holds it.
func byokRows(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query(`SELECT tenant_id, id, state, thumbprint, activated_at, sealed, mac FROM byok_keys ORDER BY tenant_id, id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var tenant, id, state, thumb string
		var at int64
		var sealed, mac []byte
		if err := rows.Scan(&tenant, &id, &state, &thumb, &at, &sealed, &mac); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s %s %s %d %x %s\n", tenant, id, state, thumb, at, sealed[:8], hex.EncodeToString(mac))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func rawDB(f *fixture) *sql.DB { return f.store.(interface{ DB() *sql.DB }).DB() }

func execSQL(t *testing.T, db *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// auditCount counts the tenant's audit entries whose action starts with
// prefix.
func (f *fixture) auditCount(t *testing.T, prefix string) int {
	t.Helper()
	return len(f.auditEntries(t, prefix))
}

// lastAudit returns the newest of the tenant's audit entries whose action
// starts with prefix.
func (f *fixture) lastAudit(t *testing.T, prefix string) *keyhold.AuditEntry {
	t.Helper()
	es := f.auditEntries(t, prefix)
	if len(es) == 0 {
		t.Fatalf("no %s audit entry", prefix)
	}
	return slices.MaxFunc(es, func(a, b *keyhold.AuditEntry) int { return cmp.Compare(a.ID, b.ID) })
}

func (f *fixture) auditEntries(t *testing.T, prefix string) []*keyhold.AuditEntry {
	t.Helper()
	return storetest.Read(t, f.store, func(ctx context.Context, tx keyhold.Tx) ([]*keyhold.AuditEntry, error) {
		return tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: f.creds.TenantID, ActionPrefixes: []string{prefix}, Limit: 10000})
	})
}

// TestBYOKKeysSealed: a tenant's BYOK key rows are sealed under the master
// key, so a database writer without it can't redirect wrapping. Each edit
// (Active and Available flipped, a thumbprint changed, another key's
// sealed key copied in, the seal removed, another tenant's key moved in as
// Active) makes the next apply, activation and environment creation
// refuse with RecordIntegrityFailed and an integrity.refused audit entry,
// changing nothing: the environment keeps its platform-key copy, no
// environment is created and the rows stay as edited. Put back, the genuine rows work again.
func TestBYOKKeysSealed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		db := rawDB(f)
		tenant := f.creds.TenantID
		env := f.createEnv(t, "sealed") // under the platform key
		_, a := f.byokTenant(t)
		f.clock.Advance(keyhold.BYOKActivationInterval + time.Minute)
		b, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048))})
		if err != nil {
			t.Fatal(err)
		}
		if b, err = f.p.ActivateBYOKKey(f.ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second)
		c, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048))})
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(keyhold.BYOKActivationInterval + time.Minute)

		// Another tenant's genuine key, as Keyhold would have written it.
		other := uuid.NewString()
		priv := newRSA(t, 2048)
		ok := &keyhold.BYOKKey{TenantID: other, ID: uuid.NewString(), State: keyhold.BYOKActive, Source: keyhold.BYOKSourceJWK, Size: 2048,
			Thumbprint: crypt.RSAThumbprint(&priv.PublicKey), CreatedBy: "someone", CreatedAt: f.clock.Now().UTC(), ActivatedAt: f.clock.Now().UTC()}
		if ok.Sealed, err = crypt.SealRSAKey(f.master, crypt.BYOKKeyPurpose(other, ok.ID), priv); err != nil {
			t.Fatal(err)
		}
		f.p.BYOK.rec.SealBYOKKey(ok)
		if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
			if err := tx.CreateTenant(context.Background(), &keyhold.Tenant{ID: other, DisplayName: "other", CreatedAt: f.clock.Now().UTC()}); err != nil {
				return err
			}
			return tx.PutBYOKKey(context.Background(), ok)
		}); err != nil {
			t.Fatal(err)
		}

		genuine := byokRows(t, db)
		envState := func() string {
			e := f.env(t, env.ID)
			var roots []string
			for _, wk := range f.wrapped(t, env.ID) {
				roots = append(roots, fmt.Sprintf("%d:%s:%s:%x", wk.Epoch, wk.Root, wk.KeyID, wk.Ciphertext[:8]))
			}
			return string(e.KeyManagedBy) + " " + strings.Join(roots, ",")
		}
		before := envState()
		q := func(format string, args ...any) string { return fmt.Sprintf(format, args...) }
		edits := []struct {
			name string
			sql  []string
			undo []string
		}{
			{"Active and Available flipped", []string{
				q(`UPDATE byok_keys SET state = 'Active' WHERE id = '%s'`, a.ID),
				q(`UPDATE byok_keys SET state = 'Available' WHERE id = '%s'`, b.ID),
			}, []string{
				q(`UPDATE byok_keys SET state = 'Available' WHERE id = '%s'`, a.ID),
				q(`UPDATE byok_keys SET state = 'Active' WHERE id = '%s'`, b.ID),
			}},
			{"thumbprint changed", []string{
				q(`UPDATE byok_keys SET thumbprint = 'AAAA' WHERE id = '%s'`, b.ID),
			}, []string{
				q(`UPDATE byok_keys SET thumbprint = '%s' WHERE id = '%s'`, b.Thumbprint, b.ID),
			}},
			{"sealed key swapped", []string{
				q(`UPDATE byok_keys SET sealed = (SELECT sealed FROM byok_keys WHERE id = '%s') WHERE id = '%s'`, c.ID, b.ID),
			}, nil},
			{"seal removed", []string{
				q(`UPDATE byok_keys SET mac = NULL WHERE id = '%s'`, b.ID),
			}, nil},
			{"another tenant's key moved in as Active", []string{
				q(`UPDATE byok_keys SET tenant_id = '%s' WHERE id = '%s'`, tenant, ok.ID),
				q(`UPDATE byok_keys SET state = 'Available' WHERE id = '%s'`, b.ID),
			}, []string{
				q(`UPDATE byok_keys SET tenant_id = '%s' WHERE id = '%s'`, other, ok.ID),
				q(`UPDATE byok_keys SET state = 'Active' WHERE id = '%s'`, b.ID),
			}},
		}
		// The rows as they were, to put back the edits without an undo.
		var saved struct{ sealed, mac []byte }
		if err := db.QueryRow(q(`SELECT sealed, mac FROM byok_keys WHERE id = '%s'`, b.ID)).Scan(&saved.sealed, &saved.mac); err != nil {
			t.Fatal(err)
		}
		for _, e := range edits {
			execSQL(t, db, e.sql...)
			edited := byokRows(t, db)
			refusals := f.auditCount(t, auditIntegrity)
			for _, try := range []struct {
				what string
				fn   func() error
			}{
				{"apply", func() error { _, err := f.p.ApplyBYOK(f.ctx, env.ID); return err }},
				{"activation", func() error { _, err := f.p.ActivateBYOKKey(f.ctx, c.ID); return err }},
				{"new environment", func() error {
					return f.p.CreateEnvironment(f.ctx, &keyhold.Environment{DisplayName: "under-tampered", Location: "europe", SKU: keyhold.SKUProduction})
				}},
			} {
				err := try.fn()
				if keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity || !strings.Contains(keyhold.ErrorMessage(err), "outside Keyhold") {
					t.Fatalf("%s, %s: %v, want %s", e.name, try.what, err, keyhold.CodeRecordIntegrity)
				}
				if got := envState(); got != before {
					t.Fatalf("%s, %s: the environment's keys changed:\nbefore %s\nafter  %s", e.name, try.what, before, got)
				}
				if envs, err := f.p.ListEnvironments(f.ctx); err != nil || len(envs) != 1 {
					t.Fatalf("%s, %s: %d environments (%v), want 1", e.name, try.what, len(envs), err)
				}
				if got := byokRows(t, db); got != edited {
					t.Fatalf("%s, %s: the BYOK rows changed:\nbefore %s\nafter  %s", e.name, try.what, edited, got)
				}
				n := f.auditCount(t, auditIntegrity)
				if n <= refusals {
					t.Fatalf("%s, %s: no %s audit entry", e.name, try.what, auditIntegrity)
				}
				refusals = n
			}
			if e.undo != nil {
				execSQL(t, db, e.undo...)
			} else if _, err := db.Exec(q(`UPDATE byok_keys SET sealed = $1, mac = $2 WHERE id = '%s'`, b.ID), saved.sealed, saved.mac); err != nil { // SQLite takes $n too
				t.Fatal(err)
			}
			if got := byokRows(t, db); got != genuine {
				t.Fatalf("%s: not put back:\n%s\nwant\n%s", e.name, got, genuine)
			}
		}
		// The genuine rows work.
		got, err := f.p.ApplyBYOK(f.ctx, env.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft {
			t.Fatalf("after the genuine apply: %s", got.KeyManagedBy)
		}
		for _, wk := range f.wrapped(t, env.ID) {
			if wk.KeyID != byokKIDPrefix+b.ID {
				t.Fatalf("wrapped under %s, want the Active key %s", wk.KeyID, b.ID)
			}
		}
	})
}
