package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/keyprovider"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/keyhold/keyhold/vault"
)

// The customer-managed key tests' world: a platform with a built-in vault
// and an operation runner over one store, the bootstrap tenant's admin
// (Global Administrator, Owner of the subscription), a resource group with
// Microsoft.KeyVault registered, and helpers that make vaults, keys,
// policies, grants and Managed Environments the way their owners would.

const (
	cmkBase     = "https://keyhold.test"
	cmkRG       = "rg-cmk"
	cmkLocation = "europe"
)

// crashMasterKey is the master key of the CMK tests (testMasterKey).
func crashMasterKey() (*crypt.Key, error) {
	return crypt.KeyFromBytes([]byte(strings.Repeat("k", crypt.KeySize)))
}

// testMasterKey is the fixed master key of the CMK tests: the crash tests'
// child processes open the same store with it.
func testMasterKey(t testing.TB) *crypt.Key {
	k, err := crashMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// openCMK opens a vault and a platform with CMK support over store, with
// runner (which the caller runs, or not) and clock (nil: the wall clock).
func openCMK(ctx context.Context, store keyhold.Store, master *crypt.Key, runner *ops.Runner, clock keyhold.Clock) (*Platform, *vault.Service, error) {
	kv, err := vault.New(vault.Config{Store: store, MasterKey: master, Clock: clock, BaseURL: cmkBase})
	if err != nil {
		return nil, nil, err
	}
	p, err := Open(ctx, Config{Store: store, MasterKey: master, Clock: clock, Issuer: cmkBase, Ops: runner, Vault: kv,
		CMK: func(id *keyhold.Identity) keyhold.KeyWrapper { return keyprovider.NewBuiltin(kv, id) }})
	if err != nil {
		kv.Close()
		return nil, nil, err
	}
	return p, kv, nil
}

type cmkFixture struct {
	*fixture
	kv     *vault.Service
	arm    *arm.Service
	runner *ops.Runner
	sub    string
}

// newCMKFixture builds the world over store. With run, the runner works
// in the background until the test ends.
func newCMKFixture(t testing.TB, store keyhold.Store, run bool) *cmkFixture {
	t.Helper()
	ctx := context.Background()
	master := testMasterKey(t)
	t.Cleanup(master.Destroy)
	clock := newFakeClock()
	runner, err := ops.New(ops.Config{Store: store, Owner: "test-" + uuid.NewString()[:8], LeaseTTL: 5 * time.Second,
		PollInterval: 20 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	p, kv, err := openCMK(ctx, store, master, runner, clock)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { p.Close(); kv.Close() })
	creds, created, err := p.BootstrapCustomer(ctx)
	if err != nil || !created {
		t.Fatalf("BootstrapCustomer: created=%v err=%v", created, err)
	}
	base := &fixture{p: p, store: store, master: master, clock: clock, creds: creds}
	base.ctx = base.login(t, creds.TenantID, creds.ClientID, creds.ClientSecret)
	f := &cmkFixture{fixture: base, kv: kv, arm: arm.New(arm.Config{Store: store, Clock: clock}), runner: runner, sub: creds.SubscriptionID}
	if run {
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); runner.Run(rctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	if _, err := f.arm.RegisterProvider(f.ctx, f.sub, keyhold.NamespaceKeyVault); err != nil {
		t.Fatalf("register Microsoft.KeyVault: %v", err)
	}
	if _, err := f.arm.PutResourceGroup(f.ctx, &keyhold.ResourceGroup{SubscriptionID: f.sub, Name: cmkRG, Location: cmkLocation}); err != nil {
		t.Fatalf("resource group: %v", err)
	}
	return f
}

// grant assigns a built-in role at scope as the admin and returns the
// assignment's name.
func (f *cmkFixture) grant(t testing.TB, principalID, role, scope string) string {
	t.Helper()
	r, ok := keyhold.FindRoleDefinition(role)
	if !ok {
		t.Fatalf("no role %q", role)
	}
	a := &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: scope, RoleDefinitionID: r.ID, PrincipalID: principalID}
	if err := f.arm.CreateRoleAssignment(f.ctx, a); err != nil {
		t.Fatalf("assign %s at %s: %v", role, scope, err)
	}
	return a.ID
}

// revoke deletes a role assignment made by grant.
func (f *cmkFixture) revoke(t testing.TB, scope, name string) {
	t.Helper()
	if _, err := f.arm.DeleteRoleAssignment(f.ctx, scope, name); err != nil {
		t.Fatalf("delete role assignment: %v", err)
	}
}

// newVault creates an RBAC vault (purge protection as asked) and lets the
// admin manage its keys.
func (f *cmkFixture) newVault(t testing.TB, name string, purgeProtection bool) *keyhold.Vault {
	t.Helper()
	v := &keyhold.Vault{SubscriptionID: f.sub, ResourceGroup: cmkRG, Name: name, Location: cmkLocation,
		EnableRbacAuthorization: true, EnablePurgeProtection: purgeProtection}
	if _, err := f.kv.PutVault(f.ctx, v); err != nil {
		t.Fatalf("PutVault %s: %v", name, err)
	}
	f.grant(t, f.adminID(), keyhold.RoleKeyVaultCryptoOfficer, v.ID())
	return v
}

// adminID is the bootstrap admin's object id.
func (f *cmkFixture) adminID() string { return keyhold.IdentityFrom(f.ctx).PrincipalID }

// newKey creates an RSA key in v as the admin.
func (f *cmkFixture) newKey(t testing.TB, v *keyhold.Vault, name string) *keyhold.KeyBundle {
	t.Helper()
	kb, err := f.kv.CreateKey(f.ctx, v.Name, name, keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSA})
	if err != nil {
		t.Fatalf("CreateKey %s: %v", name, err)
	}
	return kb
}

// newPolicy stores an Encryption policy naming key in v, with its
// system-assigned managed identity, straight in the store (as the policy
// service does).
func (f *cmkFixture) newPolicy(t testing.TB, name string, v *keyhold.Vault, key string, mod func(p *keyhold.EnterprisePolicy)) *keyhold.EnterprisePolicy {
	t.Helper()
	ctx := context.Background()
	now := f.clock.Now().UTC()
	pol := &keyhold.EnterprisePolicy{SubscriptionID: f.sub, ResourceGroup: cmkRG, Name: name, Location: cmkLocation,
		Kind: keyhold.PolicyKindEncryption, TenantID: f.creds.TenantID,
		SystemID:        "/regions/" + cmkLocation + "/providers/Microsoft.PowerPlatform/enterprisePolicies/" + uuid.NewString(),
		EncryptionState: keyhold.PolicyEncryptionEnabled, KeyVaultID: v.ID(), KeyName: key, HealthStatus: keyhold.HealthUndetermined,
		CreatedBy: f.adminID(), CreatedAt: now, UpdatedAt: now}
	if mod != nil {
		mod(pol)
	}
	err := f.store.Update(ctx, func(tx keyhold.Tx) error {
		mi, err := f.arm.CreateManagedIdentityTx(ctx, tx, pol.TenantID, name)
		if err != nil {
			return err
		}
		if pol.PrincipalID == "" {
			pol.PrincipalID = mi.ID
		} else if pol.PrincipalID == "-" {
			pol.PrincipalID = ""
		}
		f.kv.SealPolicy(pol)
		return tx.CreatePolicy(ctx, pol)
	})
	if err != nil {
		t.Fatalf("create policy %s: %v", name, err)
	}
	return pol
}

// grantKey gives pol's identity Key Vault Crypto Service Encryption User on
// the key, and returns the assignment's scope and name.
func (f *cmkFixture) grantKey(t testing.TB, pol *keyhold.EnterprisePolicy, v *keyhold.Vault, key string) (scope, name string) {
	t.Helper()
	scope = v.ID() + "/keys/" + key
	return scope, f.grant(t, pol.PrincipalID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, scope)
}

// managedEnv creates a Production environment in cmkLocation and turns
// Managed Environments on.
func (f *cmkFixture) managedEnv(t testing.TB, name string) *keyhold.Environment {
	t.Helper()
	e := &keyhold.Environment{DisplayName: name, Location: cmkLocation, SKU: keyhold.SKUProduction}
	if err := f.p.CreateEnvironment(f.ctx, e); err != nil {
		t.Fatalf("CreateEnvironment: %v", err)
	}
	on := true
	e, err := f.p.UpdateEnvironment(f.ctx, e.ID, keyhold.EnvironmentUpdate{Managed: &on})
	if err != nil {
		t.Fatalf("UpdateEnvironment: %v", err)
	}
	return e
}

// content is what a test wrote to an environment, to read back.
type content struct {
	rows  map[string]string // "table/id" → JSON
	files map[string][]byte
}

// fill writes rows (over two tables, some updated twice) and files of the
// given sizes.
func (f *cmkFixture) fill(t testing.TB, envID string, rows int, fileSizes ...int) *content {
	t.Helper()
	c := &content{rows: map[string]string{}, files: map[string][]byte{}}
	for i := range rows {
		table := []string{"accounts", "contacts"}[i%2]
		id := fmt.Sprintf("r%04d", i)
		data := fmt.Sprintf(`{"n":%d,"name":"row %d"}`, i, i)
		if _, err := f.p.PutRow(f.ctx, envID, table, id, json.RawMessage(data)); err != nil {
			t.Fatalf("PutRow: %v", err)
		}
		if i%3 == 0 { // a second version
			data = fmt.Sprintf(`{"n":%d,"name":"row %d","v":2}`, i, i)
			if _, err := f.p.PutRow(f.ctx, envID, table, id, json.RawMessage(data)); err != nil {
				t.Fatalf("PutRow: %v", err)
			}
		}
		c.rows[table+"/"+id] = data
	}
	for i, n := range fileSizes {
		name := fmt.Sprintf("file-%d.bin", i)
		b := randomBytes(t, n)
		if _, err := f.p.PutFile(f.ctx, envID, name, bytes.NewReader(b)); err != nil {
			t.Fatalf("PutFile: %v", err)
		}
		c.files[name] = b
	}
	return c
}

// check reads every row and file back through the platform, with its key
// cache dropped so that every epoch's key is unwrapped again, and compares.
func (f *cmkFixture) check(t testing.TB, envID string, c *content) {
	t.Helper()
	f.p.DropKeys("")
	if err := f.readBack(envID, c); err != nil {
		t.Fatal(err)
	}
}

// readBack is check that returns the first difference.
func (f *cmkFixture) readBack(envID string, c *content) error {
	keys := make([]string, 0, len(c.rows))
	for k := range c.rows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		table, id, _ := strings.Cut(k, "/")
		r, err := f.p.GetRow(f.ctx, envID, table, id)
		if err != nil {
			return fmt.Errorf("GetRow %s: %w", k, err)
		}
		if string(r.Data) != c.rows[k] {
			return fmt.Errorf("row %s = %s, want %s", k, r.Data, c.rows[k])
		}
	}
	for name, want := range c.files {
		_, rc, err := f.p.OpenFile(f.ctx, envID, name)
		if err != nil {
			return fmt.Errorf("OpenFile %s: %w", name, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("file %s: %d bytes differ from the %d written", name, len(got), len(want))
		}
	}
	return nil
}

// wait waits for an operation to end.
func (f *cmkFixture) wait(t testing.TB, op *keyhold.Operation) *keyhold.Operation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got, err := f.runner.Wait(ctx, op.ID)
	if err != nil {
		t.Fatalf("waiting for operation %s: %v", op.ID, err)
	}
	return got
}

// succeed runs an operation started by start to its end and requires
// success.
func (f *cmkFixture) succeed(t testing.TB, what string, start func() (*keyhold.Operation, error)) *keyhold.Operation {
	t.Helper()
	op, err := start()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if op.State != keyhold.OperationRunning || op.Step == "" {
		t.Fatalf("%s answered operation %+v, want a Running one at its first step", what, op)
	}
	op = f.wait(t, op)
	if op.State != keyhold.OperationSucceeded {
		t.Fatalf("%s: operation %s ended %s at %q: %s %s", what, op.ID, op.State, op.Step, op.ErrorCode, op.ErrorMsg)
	}
	return op
}

// env reads an environment straight from the store.
func (f *cmkFixture) env(t testing.TB, id string) *keyhold.Environment {
	t.Helper()
	var e *keyhold.Environment
	if err := f.store.View(context.Background(), func(tx keyhold.Tx) (err error) { e, err = tx.Environment(context.Background(), id); return err }); err != nil {
		t.Fatal(err)
	}
	return e
}

// wrapped reads an environment's wrapped keys straight from the store.
func (f *cmkFixture) wrapped(t testing.TB, id string) []*keyhold.WrappedKey {
	t.Helper()
	var wks []*keyhold.WrappedKey
	if err := f.store.View(context.Background(), func(tx keyhold.Tx) (err error) { wks, err = tx.WrappedKeys(context.Background(), id); return err }); err != nil {
		t.Fatal(err)
	}
	return wks
}

// stored is the form in which a wrapped key's kid is stored: relative,
// /vaults/{vault}/keys/{name}/{version}, naming no address.
func stored(kid string) string {
	k, err := keyhold.ParseKeyID(kid)
	if err != nil {
		return "not a kid: " + kid
	}
	return k.Relative()
}

// epochCounts reads an environment's items per epoch.
func (f *cmkFixture) epochCounts(t testing.TB, id string) []keyhold.EpochCount {
	t.Helper()
	var cs []keyhold.EpochCount
	if err := f.store.View(context.Background(), func(tx keyhold.Tx) (err error) { cs, err = tx.EpochCounts(context.Background(), id); return err }); err != nil {
		t.Fatal(err)
	}
	return cs
}

// operations lists the operations on a target.
func (f *cmkFixture) operations(t testing.TB, target string) []*keyhold.Operation {
	t.Helper()
	var ops []*keyhold.Operation
	if err := f.store.View(context.Background(), func(tx keyhold.Tx) (err error) {
		ops, err = tx.ListOperations(context.Background(), keyhold.OperationFilter{Target: target})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ops
}

// describeKeys renders wrapped keys as "epoch/root/principal/kid".
func describeKeys(wks []*keyhold.WrappedKey) []string {
	var out []string
	for _, k := range wks {
		out = append(out, fmt.Sprintf("%d/%s/%s/%s", k.Epoch, k.Root, k.PrincipalID, k.KeyID))
	}
	return out
}

// cmkBackends runs fn on SQLite and PostgreSQL, each with its own world.
func cmkBackends(t *testing.T, run bool, fn func(t *testing.T, f *cmkFixture)) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		fn(t, newCMKFixture(t, open(t), run))
	})
}

// wantLinked checks that env is linked to pol, re-keyed to epoch, with
// one CMK-wrapped key and every item on that epoch, and reads back c.
func wantLinked(t *testing.T, f *cmkFixture, envID string, pol *keyhold.EnterprisePolicy, epoch uint32, kid string, c *content) {
	t.Helper()
	e := f.env(t, envID)
	if e.KeyManagedBy != keyhold.KeyManagedByCustomer || e.PolicyID != pol.ID() || e.LinkStatus != keyhold.LinkStatusLinked ||
		e.State != keyhold.StateEnabled || e.EncryptionStatus != keyhold.EncryptionSucceeded || e.Epoch != epoch {
		t.Errorf("environment %+v: want linked to %s, Enabled, Succeeded, epoch %d", e, pol.Name, epoch)
	}
	wks := f.wrapped(t, envID)
	if len(wks) != 1 || wks[0].Root != keyhold.RootCMK || wks[0].Epoch != epoch || wks[0].PrincipalID != pol.PrincipalID ||
		(kid != "" && wks[0].KeyID != stored(kid)) {
		t.Errorf("wrapped keys %v: want one, epoch %d, under %s's key", describeKeys(wks), epoch, pol.Name)
	}
	if cs := f.epochCounts(t, envID); len(cs) != 1 || cs[0].Epoch != epoch {
		t.Errorf("items per epoch %v: want all on %d", cs, epoch)
	}
	f.check(t, envID, c)
}

// wantUnlinked checks that env is under the MMK at epoch, Enabled, with
// the given encryption status, and reads back c.
func wantOnMMK(t *testing.T, f *cmkFixture, envID string, epoch uint32, status keyhold.EncryptionStatus, c *content) {
	t.Helper()
	e := f.env(t, envID)
	if e.KeyManagedBy != keyhold.KeyManagedByMicrosoft || e.PolicyID != "" || e.LinkStatus != "" || e.State != keyhold.StateEnabled ||
		e.EncryptionStatus != status || e.Epoch != epoch {
		t.Errorf("environment %+v: want on the MMK, Enabled, %s, epoch %d", e, status, epoch)
	}
	wks := f.wrapped(t, envID)
	if len(wks) != 1 || wks[0].Root != keyhold.RootMMK || wks[0].Epoch != epoch {
		t.Errorf("wrapped keys %v: want the one MMK copy of epoch %d", describeKeys(wks), epoch)
	}
	f.check(t, envID, c)
}
