package platform

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/clocktest"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
}

// fixture is a platform over one store, with the bootstrap admin's
// authenticated context.
type fixture struct {
	p      *Platform
	store  keyhold.Store
	master *crypt.Key
	clock  *clocktest.Clock
	creds  *BootstrapCredentials
	ctx    context.Context // carries the admin's identity
}

func newFixture(t testing.TB, store keyhold.Store) *fixture {
	t.Helper()
	master, err := crypt.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(master.Destroy)
	clock := newFakeClock()
	p, err := Open(context.Background(), Config{Store: store, MasterKey: master, Clock: clock, Issuer: "https://keyhold.test"})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	creds, created, err := p.BootstrapCustomer(context.Background())
	if err != nil || !created {
		t.Fatalf("BootstrapCustomer: created=%v err=%v", created, err)
	}
	f := &fixture{p: p, store: store, master: master, clock: clock, creds: creds}
	f.ctx = f.login(t, creds.TenantID, creds.ClientID, creds.ClientSecret)
	return f
}

// login gets a token the way a client does and authenticates it.
func (f *fixture) login(t testing.TB, tenant, client, secret string) context.Context {
	t.Helper()
	tok, err := f.p.IssueToken(context.Background(), tenant, client, secret, "https://service.powerapps.com/.default")
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	id, err := f.p.Authenticate(context.Background(), tok.AccessToken)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return keyhold.NewContext(context.Background(), id)
}

func (f *fixture) createEnv(t *testing.T, name string) *keyhold.Environment {
	t.Helper()
	e := &keyhold.Environment{DisplayName: name, Location: "europe", SKU: keyhold.SKUProduction}
	if err := f.p.CreateEnvironment(f.ctx, e); err != nil {
		t.Fatalf("CreateEnvironment: %v", err)
	}
	return e
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := keyhold.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func forEachBackend(t *testing.T, fn func(t *testing.T, f *fixture)) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		fn(t, newFixture(t, open(t)))
	})
}

func TestEnvironmentLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		e := f.createEnv(t, "Contoso prod")
		if e.State != keyhold.StateEnabled || e.KeyManagedBy != keyhold.KeyManagedByMicrosoft || e.Epoch != 1 || e.Managed {
			t.Fatalf("new environment = %+v, want Enabled, Microsoft-managed, epoch 1, unmanaged", e)
		}
		got, err := f.p.FindEnvironment(f.ctx, e.ID)
		if err != nil || got.DisplayName != "Contoso prod" || got.Location != "europe" {
			t.Fatalf("FindEnvironment = %+v, %v", got, err)
		}
		on := true
		upd, err := f.p.UpdateEnvironment(f.ctx, e.ID, keyhold.EnvironmentUpdate{Managed: &on})
		if err != nil || !upd.Managed {
			t.Fatalf("UpdateEnvironment managed = %+v, %v", upd, err)
		}
		list, err := f.p.ListEnvironments(f.ctx)
		if err != nil || len(list) != 1 || !list[0].Managed {
			t.Fatalf("ListEnvironments = %v, %v", list, err)
		}
		if err := f.p.DeleteEnvironment(f.ctx, e.ID); err != nil {
			t.Fatalf("DeleteEnvironment: %v", err)
		}
		_, err = f.p.FindEnvironment(f.ctx, e.ID)
		wantCode(t, err, keyhold.CodeEnvironmentNotFound)
		// Its keys went with it: nothing can unwrap it any more.
		f.p.DropKeys("")
		if _, err := f.p.envKey(context.Background(), e.ID, 1); err == nil {
			t.Fatal("the deleted environment's key still unwraps")
		}
		entries, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{EnvID: e.ID})
		if err != nil || len(entries) != 3 || entries[0].Action != "environment.delete" || entries[2].Action != "environment.create" {
			t.Fatalf("audit = %v, %v; want delete, update, create", entries, err)
		}
	})
}

// snapshot is what a refused request must leave unchanged.
type snapshot struct {
	envs  string
	audit int
}

func (f *fixture) snapshot(t *testing.T) snapshot {
	t.Helper()
	envs, err := f.p.ListEnvironments(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(envs)
	entries, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{envs: string(b), audit: len(entries)}
}

func TestBadInputChangesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		e := f.createEnv(t, "base")
		if _, err := f.p.PutRow(f.ctx, e.ID, "accounts", "a1", json.RawMessage(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		big := json.RawMessage(`{"x":"` + strings.Repeat("a", keyhold.MaxRowBytes) + `"}`)
		cases := []struct {
			name    string
			do      func() error
			code    string
			mention string
		}{
			{"unknown location", func() error {
				return f.p.CreateEnvironment(f.ctx, &keyhold.Environment{DisplayName: "x", Location: "mars", SKU: keyhold.SKUSandbox})
			}, keyhold.CodeInvalidLocation, "unitedstates"},
			{"unknown sku", func() error {
				return f.p.CreateEnvironment(f.ctx, &keyhold.Environment{DisplayName: "x", Location: "europe", SKU: "Gold"})
			}, keyhold.CodeInvalidSKU, "Sandbox"},
			{"empty name", func() error {
				return f.p.CreateEnvironment(f.ctx, &keyhold.Environment{DisplayName: "  ", Location: "europe", SKU: keyhold.SKUSandbox})
			}, keyhold.CodeBadRequest, "displayName"},
			{"unknown environment", func() error {
				_, err := f.p.PutRow(f.ctx, "00000000-0000-0000-0000-000000000000", "accounts", "a1", json.RawMessage(`{}`))
				return err
			}, keyhold.CodeEnvironmentNotFound, "list environments"},
			{"bad table name", func() error {
				_, err := f.p.PutRow(f.ctx, e.ID, "1bad;", "a1", json.RawMessage(`{}`))
				return err
			}, keyhold.CodeInvalidName, "letter"},
			{"bad row id", func() error {
				_, err := f.p.PutRow(f.ctx, e.ID, "accounts", "../x", json.RawMessage(`{}`))
				return err
			}, keyhold.CodeInvalidName, "row id"},
			{"row not an object", func() error {
				_, err := f.p.PutRow(f.ctx, e.ID, "accounts", "a1", json.RawMessage(`[1,2]`))
				return err
			}, keyhold.CodeInvalidRequestContent, "JSON object"},
			{"row too large", func() error {
				_, err := f.p.PutRow(f.ctx, e.ID, "accounts", "a1", big)
				return err
			}, keyhold.CodeRequestTooLarge, "file"},
			{"delete missing row", func() error {
				return f.p.DeleteRow(f.ctx, e.ID, "accounts", "nope")
			}, keyhold.CodeRowNotFound, "nope"},
			{"no identity", func() error {
				_, err := f.p.ListEnvironments(context.Background())
				return err
			}, keyhold.CodeUnauthorized, "bearer token"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := f.snapshot(t)
				err := c.do()
				wantCode(t, err, c.code)
				if msg := keyhold.ErrorMessage(err); !strings.Contains(msg, c.mention) {
					t.Fatalf("message %q does not mention %q", msg, c.mention)
				}
				if after := f.snapshot(t); after != before {
					t.Fatalf("state changed:\nbefore %+v\nafter  %+v", before, after)
				}
				row, err := f.p.GetRow(f.ctx, e.ID, "accounts", "a1")
				if err != nil || string(row.Data) != `{"v":1}` || row.Version != 1 {
					t.Fatalf("row after refusal = %+v, %v", row, err)
				}
			})
		}
	})
}

func TestRowsRoundTripAndVersions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		e := f.createEnv(t, "rows")
		for i := 1; i <= 3; i++ {
			r, err := f.p.PutRow(f.ctx, e.ID, "contacts", "c1", json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)))
			if err != nil || r.Version != uint64(i) {
				t.Fatalf("PutRow #%d = %+v, %v", i, r, err)
			}
		}
		r, err := f.p.GetRow(f.ctx, e.ID, "contacts", "c1")
		if err != nil || string(r.Data) != `{"n":3}` || r.Version != 3 {
			t.Fatalf("GetRow = %+v, %v", r, err)
		}
		if err := f.p.DeleteRow(f.ctx, e.ID, "contacts", "c1"); err != nil {
			t.Fatal(err)
		}
		_, err = f.p.GetRow(f.ctx, e.ID, "contacts", "c1")
		wantCode(t, err, keyhold.CodeRowNotFound)
	})
}

func TestConcurrentRowWritersAllLand(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		e := f.createEnv(t, "race")
		const writers = 4
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for i := 0; i < writers; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, err := f.p.PutRow(f.ctx, e.ID, "t", "same", json.RawMessage(fmt.Sprintf(`{"w":%d}`, i)))
				errs <- err
			}(i)
		}
		wg.Wait()
		close(errs)
		ok := 0
		for err := range errs {
			if err == nil {
				ok++
			} else if keyhold.ErrorCode(err) != keyhold.CodeConflict {
				t.Fatalf("unexpected error: %v", err)
			}
		}
		r, err := f.p.GetRow(f.ctx, e.ID, "t", "same")
		if err != nil || r.Version != uint64(ok) {
			t.Fatalf("after %d successful writes the row is %+v, %v", ok, r, err)
		}
	})
}

// TestTransplantAndTamperFail moves ciphertext where it does not belong,
// and flips bits: each read must fail loudly, never return other data.
func TestTransplantAndTamperFail(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		e1, e2 := f.createEnv(t, "one"), f.createEnv(t, "two")
		for _, e := range []*keyhold.Environment{e1, e2} {
			for _, id := range []string{"a", "b"} {
				if _, err := f.p.PutRow(f.ctx, e.ID, "t", id, json.RawMessage(`{"owner":"`+e.ID+id+`"}`)); err != nil {
					t.Fatal(err)
				}
			}
		}
		raw := func(envID, id string) *keyhold.RowRecord {
			var r *keyhold.RowRecord
			if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
				var err error
				r, err = tx.Row(context.Background(), envID, "t", id)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return r
		}
		overwrite := func(dst *keyhold.RowRecord, ct []byte) {
			if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
				if err := tx.DeleteRow(context.Background(), dst.EnvID, dst.Table, dst.ID); err != nil {
					return err
				}
				c := *dst
				c.Ciphertext, c.Version = ct, 1
				return tx.PutRow(context.Background(), &c)
			}); err != nil {
				t.Fatal(err)
			}
		}
		cases := []struct {
			name   string
			envID  string
			id     string
			mutate func()
		}{
			{"other row id", e1.ID, "b", func() { overwrite(raw(e1.ID, "b"), raw(e1.ID, "a").Ciphertext) }},
			{"other environment", e2.ID, "a", func() { overwrite(raw(e2.ID, "a"), raw(e1.ID, "a").Ciphertext) }},
			{"flipped bit", e2.ID, "b", func() {
				r := raw(e2.ID, "b")
				ct := bytes.Clone(r.Ciphertext)
				ct[len(ct)/2] ^= 0x10
				overwrite(r, ct)
			}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				c.mutate()
				r, err := f.p.GetRow(f.ctx, c.envID, "t", c.id)
				if err == nil {
					t.Fatalf("read of tampered row returned %s", r.Data)
				}
				wantCode(t, err, keyhold.CodeInternal)
				if !strings.Contains(keyhold.ErrorMessage(err), "integrity") {
					t.Fatalf("message %q does not say the integrity check failed", keyhold.ErrorMessage(err))
				}
			})
		}
	})
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func readAllFile(t *testing.T, f *fixture, envID, name string) ([]byte, error) {
	t.Helper()
	_, rc, err := f.p.OpenFile(f.ctx, envID, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// failingReader yields n bytes, then an error, like a dropped upload.
type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(b []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset")
	}
	if len(b) > f.n {
		b = b[:f.n]
	}
	n, err := f.r.Read(b)
	f.n -= n
	return n, err
}

func TestFilesStreamReplaceAndFailedUpload(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		e := f.createEnv(t, "files")
		for _, size := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 12345} {
			t.Run(fmt.Sprint(size), func(t *testing.T) {
				data := randomBytes(t, size)
				info, err := f.p.PutFile(f.ctx, e.ID, "blob.bin", bytes.NewReader(data))
				if err != nil || info.Size != int64(size) {
					t.Fatalf("PutFile = %+v, %v", info, err)
				}
				got, err := readAllFile(t, f, e.ID, "blob.bin")
				if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
					t.Fatalf("read back %d bytes (err %v), want the %d written", len(got), err, size)
				}
			})
		}
		good := randomBytes(t, 2*ChunkSize+7)
		if _, err := f.p.PutFile(f.ctx, e.ID, "doc.pdf", bytes.NewReader(good)); err != nil {
			t.Fatal(err)
		}
		_, err := f.p.PutFile(f.ctx, e.ID, "doc.pdf", &failingReader{r: bytes.NewReader(randomBytes(t, 3*ChunkSize)), n: ChunkSize + 100})
		if err == nil {
			t.Fatal("an upload that failed midway was accepted")
		}
		got, err := readAllFile(t, f, e.ID, "doc.pdf")
		if err != nil || !bytes.Equal(got, good) {
			t.Fatalf("after a failed upload the file reads %d bytes (err %v), want the earlier %d", len(got), err, len(good))
		}
		var stale []*keyhold.FileUpload
		f.clock.Advance(StaleUploadAge + time.Hour)
		if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
			stale, err = tx.StaleUploads(context.Background(), f.clock.Now())
			return err
		}); err != nil || len(stale) != 0 {
			t.Fatalf("failed upload left %d upload marks (err %v)", len(stale), err)
		}
	})
}

func TestFileTamperFails(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		e := f.createEnv(t, "tamper")
		data := randomBytes(t, 2*ChunkSize+99)
		if _, err := f.p.PutFile(f.ctx, e.ID, "x.bin", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		var rec *keyhold.FileRecord
		if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
			var err error
			rec, err = tx.File(context.Background(), e.ID, "x.bin")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		mutate := func(seq int, fn func([]byte) []byte) {
			if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
				c, err := tx.FileChunk(context.Background(), e.ID, rec.Generation, seq)
				if err != nil {
					return err
				}
				return tx.PutFileChunk(context.Background(), e.ID, rec.Generation, seq, fn(bytes.Clone(c)))
			}); err != nil {
				t.Fatal(err)
			}
		}
		mutate(1, func(c []byte) []byte { c[500] ^= 1; return c })
		got, err := readAllFile(t, f, e.ID, "x.bin")
		if err == nil {
			t.Fatal("a file with a flipped bit read back without error")
		}
		wantCode(t, err, keyhold.CodeInternal)
		if len(got) > ChunkSize+1 {
			t.Fatalf("returned %d bytes, beyond the first intact segment(s)", len(got))
		}
	})
}

// TestUnwrapsPerTTL: a burst of data requests costs at most one root-key
// unwrap per environment per cache TTL.
func TestUnwrapsPerTTL(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		const envs, requests = 4, 400
		ids := make([]string, envs)
		for i := range ids {
			ids[i] = f.createEnv(t, fmt.Sprint("e", i)).ID
			if _, err := f.p.PutRow(f.ctx, ids[i], "t", "r", json.RawMessage(`{}`)); err != nil {
				t.Fatal(err)
			}
		}
		f.p.DropKeys("")
		before := f.p.Unwraps()
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < requests; i += 4 {
					if _, err := f.p.GetRow(f.ctx, ids[i%envs], "t", "r"); err != nil {
						t.Error(err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		if got := f.p.Unwraps() - before; got != envs {
			t.Fatalf("%d requests over %d environments cost %d unwraps, want %d", requests, envs, got, envs)
		}
		f.clock.Advance(DefaultKeyCacheTTL + time.Second)
		for _, id := range ids {
			if _, err := f.p.GetRow(f.ctx, id, "t", "r"); err != nil {
				t.Fatal(err)
			}
		}
		if got := f.p.Unwraps() - before; got != 2*envs {
			t.Fatalf("after the TTL, unwraps = %d, want %d", got, 2*envs)
		}
	})
}

func TestTokens(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	c := f.creds
	bg := context.Background()
	var auditMark int64 = -1 // the log's last entry before the cases
	if err := f.store.View(bg, func(tx keyhold.Tx) error {
		es, err := tx.ListAudit(bg, keyhold.AuditFilter{TenantID: c.TenantID, Limit: 1})
		if len(es) == 1 {
			auditMark = es[0].ID
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name                   string
		tenant, client, secret string
		scope                  string
		code                   string
	}{
		{"wrong secret", c.TenantID, c.ClientID, "khs_wrong", "https://service.powerapps.com/.default", keyhold.CodeInvalidClient},
		{"unknown client", c.TenantID, "nobody", c.ClientSecret, "https://service.powerapps.com/.default", keyhold.CodeInvalidClient},
		{"wrong tenant", "11111111-1111-1111-1111-111111111111", c.ClientID, c.ClientSecret, "https://service.powerapps.com/.default", keyhold.CodeInvalidClient},
		{"unknown scope", c.TenantID, c.ClientID, c.ClientSecret, "https://graph.microsoft.com/.default", keyhold.CodeInvalidScope},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.p.IssueToken(bg, tc.tenant, tc.client, tc.secret, tc.scope)
			wantCode(t, err, tc.code)
			if strings.Contains(keyhold.ErrorMessage(err), c.ClientSecret) {
				t.Fatal("error message holds the secret")
			}
		})
	}
	for _, scope := range []string{"https://management.azure.com/.default", "https://vault.azure.net/.default", "https://service.powerapps.com//.default"} {
		tok, err := f.p.IssueToken(bg, c.TenantID, c.ClientID, c.ClientSecret, scope)
		if err != nil {
			t.Fatalf("scope %s: %v", scope, err)
		}
		id, err := f.p.Authenticate(bg, tok.AccessToken)
		if err != nil || id.TenantID != c.TenantID || id.AppID != c.ClientID || !strings.HasPrefix(scope, string(id.Audience)) {
			t.Fatalf("Authenticate = %+v, %v", id, err)
		}
	}
	// Every secret sign-in is audited, refused or not, and never with the
	// secret in it.
	var entries []*keyhold.AuditEntry
	if err := f.store.View(bg, func(tx keyhold.Tx) error {
		var err error
		entries, err = tx.ListAudit(bg, keyhold.AuditFilter{TenantID: c.TenantID, AfterID: auditMark, ActionPrefixes: []string{"signIn.clientSecret"}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	results := map[string]int{}
	for _, e := range entries {
		results[e.Result]++
		if strings.Contains(e.Detail, c.ClientSecret) || strings.Contains(e.Target, c.ClientSecret) {
			t.Fatal("an audit entry holds the secret")
		}
	}
	// Refused: the wrong secret and the unknown client (the wrong tenant
	// has no log, the unknown scope is refused before the secret is read).
	if results["Failed"] != 2 || results["Succeeded"] != 3 {
		t.Errorf("signIn.clientSecret audit results = %v, want 2 Failed and 3 Succeeded", results)
	}

	tok, _ := f.p.IssueToken(bg, c.TenantID, c.ClientID, c.ClientSecret, "https://service.powerapps.com/.default")
	_, err := f.p.Authenticate(bg, tok.AccessToken[:len(tok.AccessToken)-3]+"AAA")
	wantCode(t, err, keyhold.CodeInvalidToken)
	f.clock.Advance(DefaultTokenTTL + time.Second)
	_, err = f.p.Authenticate(bg, tok.AccessToken)
	wantCode(t, err, keyhold.CodeExpiredToken)
}

func TestWrongMasterKeyRefusesAndChangesNothing(t *testing.T) {
	store := storetest.OpenSQLite(t)
	f := newFixture(t, store)
	e := f.createEnv(t, "keep")
	sealed := func() []byte {
		var k *keyhold.SealedKey
		if err := store.View(context.Background(), func(tx keyhold.Tx) error {
			var err error
			k, err = tx.SealedKey(context.Background(), "mmk")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return k.Sealed
	}
	before := sealed()
	other, _ := crypt.NewKey()
	defer other.Destroy()
	if _, err := Open(context.Background(), Config{Store: store, MasterKey: other}); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("Open with the wrong master key: %v, want an error naming the master key", err)
	}
	if !bytes.Equal(sealed(), before) {
		t.Fatal("a refused start changed the sealed MMK")
	}
	// The right key still opens everything.
	p2, err := Open(context.Background(), Config{Store: store, MasterKey: f.master, Clock: f.clock, Issuer: "https://keyhold.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if _, err := p2.envKey(context.Background(), e.ID, 1); err != nil {
		t.Fatalf("reopened platform cannot unwrap: %v", err)
	}
}

// TestSharedUnwrapOutlivesItsStarter: the unwrap that concurrent requests
// share is not tied to the request that started it: a caller that gives up
// gets its own context's error, and the key is still unwrapped and cached
// for the others.
func TestSharedUnwrapOutlivesItsStarter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		env := f.createEnv(t, "shared")
		if _, err := f.p.PutRow(f.ctx, env.ID, "t", "r", json.RawMessage(`{}`)); err != nil {
			t.Fatal(err)
		}
		f.p.DropKeys(env.ID)
		gone, cancel := context.WithCancel(f.ctx)
		cancel()
		if k, err := f.p.envKey(gone, env.ID, env.Epoch); err == nil {
			k.Destroy() // the unwrap won the race with the cancelled context: fine
		} else if !errors.Is(err, context.Canceled) {
			t.Fatalf("envKey with a cancelled context: %v, want context.Canceled", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !f.p.cache.Contains(cacheID(env.ID, env.Epoch)) {
			if time.Now().After(deadline) {
				t.Fatal("the key was not cached: the shared unwrap stopped with the caller that started it")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}
