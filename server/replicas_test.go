package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	nethttp "net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// replica is one running server of a pair sharing a PostgreSQL database,
// with the bootstrap administrator's client.
type replica struct {
	name string
	srv  *running
	c    *khttp.Client
}

// call sends a JSON request as the administrator (body "" for none) for
// the audience and returns the status and the answer.
func (r *replica) call(t *testing.T, method, path string, audience keyhold.Audience, body string) (int, []byte) {
	t.Helper()
	tok, err := r.c.Token(context.Background(), string(audience)+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := nethttp.NewRequest(method, r.srv.url+path, rb)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.c.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, r.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// metric reads one sample of the replica's /metrics (series is the name
// with its labels as Prometheus prints them); 0 if absent.
func (r *replica) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := r.c.HTTPClient().Get(r.srv.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q", series, v)
			}
			return f
		}
	}
	return 0
}

const (
	cacheEntries  = "keyhold_key_cache_entries"
	mmkUnwraps    = `keyhold_root_key_unwraps_total{result="ok",root="mmk"}`
	dropsReceived = `keyhold_key_drop_messages_total{direction="received",result="ok"}`
	dropsSent     = `keyhold_key_drop_messages_total{direction="sent",result="ok"}`
	dropEchoes    = `keyhold_key_drop_messages_total{direction="received",result="own"}`
)

// grant assigns a built-in role at scope through replica r's ARM API.
func (r *replica) grant(t *testing.T, sub, scope, role, principalID string) {
	t.Helper()
	d, ok := keyhold.FindRoleDefinition(role)
	if !ok {
		t.Fatalf("no role %s", role)
	}
	status, b := r.call(t, "PUT", scope+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version=2022-04-01",
		keyhold.AudienceManagement, `{"properties":{"roleDefinitionId":"/subscriptions/`+sub+
			`/providers/Microsoft.Authorization/roleDefinitions/`+d.ID+`","principalId":"`+principalID+`","principalType":"ServicePrincipal"}}`)
	if status != 201 {
		t.Fatalf("grant %s to %s: %d %s", role, principalID, status, b)
	}
}

// TestReplicasDropKeysOnLock runs two replicas on one PostgreSQL database.
// Both hold the key of a linked environment in memory; the policy
// identity's access to the key is revoked through replica A; A's health
// check locks the environment, and within the interval both replicas have
// zeroed that key (the one that did not lock it learns it by
// LISTEN/NOTIFY: neither reads data in between) while keeping the key of
// an unrelated environment, and both refuse the data with
// EnvironmentLocked. Once access is restored and the
// environment re-enabled through A, B serves every row again.
func TestReplicasDropKeysOnLock(t *testing.T) {
	db := storetest.NewPostgresDatabase(t) // skips without PostgreSQL, fails with KEYHOLD_REQUIRE_POSTGRES=1
	ctx := context.Background()
	master := base64Key(t)
	const interval = 200 * time.Millisecond
	dirA, dirB := t.TempDir(), t.TempDir()
	srvA, err := start(t, Config{DataDir: dirA, PostgresDSN: db.DSN, MasterKey: master, HealthInterval: interval})
	if err != nil {
		t.Fatalf("replica A: %v", err)
	}
	// B checks health rarely: it must hear of the lock from A.
	srvB, err := start(t, Config{DataDir: dirB, PostgresDSN: db.DSN, MasterKey: master, HealthInterval: time.Hour})
	if err != nil {
		t.Fatalf("replica B: %v", err)
	}
	bs := readBootstrap(t, dirA) // the first start bootstrapped; B found the tenant
	bsB := bs
	bsB.CAFile = filepath.Join(dirB, "tls", "ca.pem") // each replica has its own TLS CA here
	a := &replica{name: "A", srv: srvA, c: client(t, srvA.url, bs)}
	b := &replica{name: "B", srv: srvB, c: client(t, srvB.url, bsB)}

	// The key vault administrator's part, through A: providers, a
	// resource group, a vault with a key, an Encryption policy whose
	// identity may use the key.
	sub := bs.SubscriptionID
	for _, ns := range []string{keyhold.NamespaceKeyVault, keyhold.NamespacePowerPlatform} {
		if _, err := a.c.RegisterProvider(ctx, sub, ns); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.c.PutResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: sub, Name: "cmk", Location: "westeurope"}); err != nil {
		t.Fatal(err)
	}
	vaultID := "/subscriptions/" + sub + "/resourceGroups/cmk/providers/Microsoft.KeyVault/vaults/replicas-kv"
	status, body := a.call(t, "PUT", vaultID+"?api-version=2023-07-01", keyhold.AudienceManagement, `{"location":"westeurope","properties":{"tenantId":"`+bs.TenantID+
		`","sku":{"family":"A","name":"standard"},"enableRbacAuthorization":true,"enableSoftDelete":true,"softDeleteRetentionInDays":90,"enablePurgeProtection":true}}`)
	if status != 200 && status != 201 {
		t.Fatalf("PUT vault: %d %s", status, body)
	}
	var adminID string
	sps, err := a.c.ServicePrincipals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range sps {
		if sp.AppID == bs.ClientID {
			adminID = sp.ID
		}
	}
	a.grant(t, sub, vaultID, keyhold.RoleKeyVaultAdministrator, adminID)
	if status, body = a.call(t, "POST", "/vaults/replicas-kv/keys/cmk/create?api-version=7.5", keyhold.AudienceVault, `{"kty":"RSA","key_size":2048}`); status != 200 {
		t.Fatalf("create key: %d %s", status, body)
	}
	polID := "/subscriptions/" + sub + "/resourceGroups/cmk/providers/Microsoft.PowerPlatform/enterprisePolicies/replicas-cmk"
	status, body = a.call(t, "PUT", polID+"?api-version=2020-10-30", keyhold.AudienceManagement,
		`{"location":"europe","kind":"Encryption","identity":{"type":"SystemAssigned"},"properties":{"encryption":{"state":"Enabled","keyVault":{"id":"`+
			vaultID+`","key":{"name":"cmk"}}}}}`)
	var pol struct {
		Identity   struct{ PrincipalID string }
		Properties struct{ SystemID string }
	}
	if status != 201 || json.Unmarshal(body, &pol) != nil || pol.Identity.PrincipalID == "" || pol.Properties.SystemID == "" {
		t.Fatalf("PUT policy: %d %s", status, body)
	}
	a.grant(t, sub, vaultID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, pol.Identity.PrincipalID)

	// A linked environment, and an unrelated one (Microsoft-managed key).
	linked := &keyhold.Environment{DisplayName: "Contoso", Location: "europe", SKU: keyhold.SKUProduction, Managed: true}
	other := &keyhold.Environment{DisplayName: "Fabrikam", Location: "europe", SKU: keyhold.SKUSandbox}
	for _, e := range []*keyhold.Environment{linked, other} {
		if err := a.c.CreateEnvironment(ctx, e); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := a.c.PutRow(ctx, e.ID, "accounts", "a"+strconv.Itoa(i), json.RawMessage(`{"n":`+strconv.Itoa(i)+`}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	op, err := a.c.LinkPolicy(ctx, linked.ID, pol.Properties.SystemID)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if done, err := a.c.WaitOperation(wctx, op.ID, 0, nil); err != nil || done.State != keyhold.OperationSucceeded {
		t.Fatalf("link: %+v, %v", done, err)
	}

	readAll := func(t *testing.T, r *replica, e *keyhold.Environment) {
		t.Helper()
		for i := range 3 {
			row, err := r.c.GetRow(ctx, e.ID, "accounts", "a"+strconv.Itoa(i))
			if err != nil || string(row.Data) != `{"n":`+strconv.Itoa(i)+`}` {
				t.Fatalf("row a%d of %s through %s: %+v, %v", i, e.DisplayName, r.name, row, err)
			}
		}
	}
	// Warm both caches.
	readAll(t, a, linked)
	readAll(t, b, linked)
	readAll(t, b, other)
	if n := b.metric(t, cacheEntries); n < 2 {
		t.Fatalf("B caches %v keys after reading both environments, want at least 2", n)
	}
	if n := a.metric(t, cacheEntries); n < 2 {
		t.Fatalf("A caches %v keys after writing both environments and reading one, want at least 2", n)
	}
	sentBefore := a.metric(t, dropsSent) + b.metric(t, dropsSent)

	// Revoke through A's resource manager.
	as, err := a.c.ListRoleAssignments(ctx, vaultID, keyhold.AssignmentFilter{PrincipalID: pol.Identity.PrincipalID})
	if err != nil || len(as) == 0 {
		t.Fatalf("the policy identity's assignments: %v, %v", as, err)
	}
	revoked := time.Now()
	for _, ra := range as {
		if _, err := a.c.DeleteRoleAssignment(ctx, ra.Scope, ra.ID); err != nil {
			t.Fatal(err)
		}
	}

	// Within the interval (and some slack on a busy machine) the
	// environment is Locked. Only control-plane reads until the keys are
	// checked: nothing on B may unwrap or drop anything by itself.
	var lockedAt time.Time
	for deadline := revoked.Add(interval + 10*time.Second); ; time.Sleep(20 * time.Millisecond) {
		e, err := a.c.FindEnvironment(ctx, linked.ID)
		if err != nil {
			t.Fatal(err)
		}
		if e.State == keyhold.StateLocked {
			lockedAt = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("environment still %s %s after the revocation", e.State, time.Since(revoked))
		}
	}
	// One key stays on each replica: the unrelated environment's (A
	// cached it when it created the environment and wrote its rows).
	for deadline := lockedAt.Add(2 * time.Second); a.metric(t, cacheEntries) != 1 || b.metric(t, cacheEntries) != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("2s after the lock, A caches %v keys and B %v; want 1 each: the unrelated environment's",
				a.metric(t, cacheEntries), b.metric(t, cacheEntries))
		}
	}
	stopped := time.Since(revoked)
	t.Logf("revocation to lock seen: %v; to both replicas' keys zeroed: %v", lockedAt.Sub(revoked), stopped)
	// The promise: both replicas stop within the interval. The
	// loops above wait longer only to say what went wrong; the bound has a
	// little slack for a busy machine.
	if bound := interval + 2*time.Second; stopped > bound {
		t.Errorf("both replicas stopped %v after the revocation, more than the health interval %v (+2 s slack)", stopped, interval)
	}
	if sent := a.metric(t, dropsSent) + b.metric(t, dropsSent); sent <= sentBefore {
		t.Fatal("no key drop was published: the keys went some other way")
	}
	// Each replica hears the drops over the broadcaster: the other's
	// applied, and its own as the echo it skips (it dropped at once).
	received := func(r *replica) float64 { return r.metric(t, dropsReceived) + r.metric(t, dropEchoes) }
	for deadline := time.Now().Add(2 * time.Second); received(a) == 0 || received(b) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a replica received no key drop: A %v, B %v", received(a), received(b))
		}
	}
	// The key left is the unrelated environment's: reading it unwraps
	// nothing.
	for _, r := range []*replica{a, b} {
		unwraps := r.metric(t, mmkUnwraps)
		readAll(t, r, other)
		if got := r.metric(t, mmkUnwraps); got != unwraps {
			t.Fatalf("reading the unrelated environment on %s unwrapped %v times: its key was dropped, so the one left is the locked one's", r.name, got-unwraps)
		}
	}

	// B refuses the locked environment's data, naming the policy, and
	// caches nothing doing so.
	for _, r := range []*replica{b, a} {
		_, err := r.c.GetRow(ctx, linked.ID, "accounts", "a0")
		if keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked || !strings.Contains(err.Error(), "replicas-cmk") {
			t.Fatalf("GetRow on %s after the lock: %v, want %s naming the policy", r.name, err, keyhold.CodeEnvironmentLocked)
		}
	}
	for _, r := range []*replica{a, b} {
		if n := r.metric(t, cacheEntries); n != 1 {
			t.Fatalf("after refused reads %s caches %v keys, want 1", r.name, n)
		}
	}

	// Nothing was lost: restore access, re-enable through A, and B
	// serves every row again.
	a.grant(t, sub, vaultID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, pol.Identity.PrincipalID)
	for deadline := time.Now().Add(interval + 10*time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err = a.c.EnableEnvironmentOp(ctx, linked.ID); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("re-enable after restoring access: %v", err)
		}
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		e, err := b.c.FindEnvironment(ctx, linked.ID)
		if err == nil && e.State == keyhold.StateEnabled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("environment after re-enable: %+v, %v", e, err)
		}
	}
	readAll(t, b, linked)
	readAll(t, a, linked)
}
