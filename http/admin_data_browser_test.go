package http_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/platform"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// withCoverageAndFlows serves the coverage report and a real flows
// engine on the stack, as server.Run does.
func withCoverageAndFlows(t *testing.T) func(*khttp.Server, *platform.Platform, keyhold.Store) {
	return func(srv *khttp.Server, p *platform.Platform, store keyhold.Store) {
		fl, err := flows.New(flows.Config{Store: store, Sealer: p.Sealer, Data: p})
		if err != nil {
			t.Fatal(err)
		}
		srv.Coverage, srv.Flows = p, fl
	}
}

// TestAdminCenterChromiumData walks the environment's data pages of the
// admin center in Chromium (issue 17): Pat, a platform administrator,
// sees an environment linked to a customer-managed key with its link's
// progress (done of total) and end state, takes a backup (listed under
// the customer's key with its expiry), is refused restoring it into an
// environment under Microsoft's key with the service's message and
// nothing changed, restores it into its own environment after the
// confirmation, watching the operation to Succeeded, is refused copying
// it to the Microsoft-key environment, copies that one to a third,
// follows another replica's re-key without a reload, and reads what the
// key protects (the coverage table) and the flow that stays on the
// platform key with its fix. Kim, the key vault administrator, sets the
// key's rotation policy (a bad period refused, nothing saved) and sees
// who may wrap and unwrap and the vault's network rules. Pat sets the
// tenant's webhook, sends it a test event and, after the key vault
// administrator revokes the key, sees the lock event naming who removed
// the grant. Rita, who has no role, is refused each page's action with
// the service's own message, and nothing changes. Each page passes
// axe-core and fits a phone.
func TestAdminCenterChromiumData(t *testing.T) {
	bctx := adminBrowser(t)
	var store keyhold.Store
	s := newCMKStackOn(t, storetest.OpenSQLite(t), withCoverageAndFlows(t), func(_ *khttp.Server, _ *platform.Platform, st keyhold.Store) { store = st })
	ctx := context.Background()
	c := s.client
	pol := s.setUpPolicy(t)

	appID := s.adminApp(t)
	patID := s.platformAdmin(t, pol.ID)

	cmkEnv := &keyhold.Environment{DisplayName: "Contoso CMK", Location: "europe", SKU: keyhold.SKUProduction, Managed: true}
	plain := &keyhold.Environment{DisplayName: "Fabrikam plain", Location: "europe", SKU: keyhold.SKUSandbox, Managed: true}
	third := &keyhold.Environment{DisplayName: "Northwind copy", Location: "europe", SKU: keyhold.SKUSandbox, Managed: true}
	for _, e := range []*keyhold.Environment{cmkEnv, plain, third} {
		if err := c.CreateEnvironment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a1", "a2", "a3"} {
		if _, err := c.PutRow(ctx, cmkEnv.ID, "accounts", id, json.RawMessage(`{"name":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PutRow(ctx, plain.ID, "accounts", "p1", json.RawMessage(`{"name":"plain"}`)); err != nil {
		t.Fatal(err)
	}
	def := json.RawMessage(strings.Replace(adminEchoFlow, `"kind": "Button"`, `"kind": "Http"`, 1))
	flowName := "Orders webhook"
	if _, err := c.PutFlow(ctx, cmkEnv.ID, "orders", &keyhold.FlowInput{DisplayName: &flowName, Definition: def}); err != nil {
		t.Fatal(err)
	}
	link, err := c.LinkPolicy(ctx, cmkEnv.ID, pol.Properties.SystemID)
	if err != nil {
		t.Fatal(err)
	}

	p := &page{t: t, ctx: bctx}
	signIn(p, s.url, s.creds.TenantID, appID, patUPN, patPW)
	envURL := s.url + "/admin/environments/" + cmkEnv.ID
	// The link's progress and end state: the page follows it (its script
	// reloads the page when it ends).
	p.run(chromedp.Navigate(envURL), chromedp.WaitVisible(chromedp.ID("envop-link")))
	for deadline := time.Now().Add(30 * time.Second); !p.holds(`document.getElementById('envop-link').textContent.includes('Succeeded') && document.readyState === 'complete'`); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the environment's page says %q 30s after the link started", p.text("envop-link"))
		}
	}
	done, err := c.GetOperation(ctx, link.ID)
	if err != nil || done.State != keyhold.OperationSucceeded || done.Total == 0 {
		t.Fatalf("the link: %+v, %v", done, err)
	}
	p.wantText("envop-link", "Link Succeeded", itoa(done.Done)+" of "+itoa(done.Total))
	p.wantText("key-managed-by", "Customer")
	// The flows warning.
	p.wantText("flows-warning", "1 flow stays on the platform key")

	// Back up now: listed under the customer's key, with its expiry.
	p.run(chromedp.SendKeys(chromedp.ID("backup-label"), "before the upgrade"))
	p.submit("create-backup")
	p.wantText("done", "The backup is taken.")
	bs, err := c.ListBackups(ctx, cmkEnv.ID)
	if err != nil || len(bs) != 1 {
		t.Fatalf("backups: %v, %v", bs, err)
	}
	p.wantText("backup-list", "before the upgrade", "Customer-managed key cmk in contoso-kv", bs[0].ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"))
	p.accessible("environment (backups, operation)")
	p.screenshot("environment-backups")

	// Restore into the environment under Microsoft's key: the service's
	// refusal, and nothing changed there.
	plainRows := rowsOf(t, c, plain.ID)
	p.submit("restore-" + bs[0].ID)
	p.wantText("ow-rule", "same customer-managed key")
	p.accessible("restore")
	p.screenshot("restore")
	p.run(chromedp.SetValue(chromedp.ID("ow-target"), plain.ID), chromedp.Click(chromedp.ID("ow-confirm")))
	p.submit("ow-submit")
	p.wantText("error", "encrypted with", plain.ID)
	if e, err := c.FindEnvironment(ctx, plain.ID); err != nil || e.RestoreOperationID != "" || rowsOf(t, c, plain.ID) != plainRows {
		t.Fatalf("a refused restore changed %s: %+v, %v", plain.ID, e, err)
	}
	// Into its own environment, confirmed: the operation to Succeeded.
	if _, err := c.PutRow(ctx, cmkEnv.ID, "accounts", "a4", json.RawMessage(`{"name":"after the backup"}`)); err != nil {
		t.Fatal(err)
	}
	p.run(chromedp.SetValue(chromedp.ID("ow-target"), cmkEnv.ID))
	if !p.holds(`document.getElementById('ow-confirm').checked`) {
		p.run(chromedp.Click(chromedp.ID("ow-confirm")))
	}
	p.submit("ow-submit")
	for deadline := time.Now().Add(30 * time.Second); !p.holds(opSucceeded); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the restore's page says %q after 30s", p.text("op-state"))
		}
	}
	if got := rowsOf(t, c, cmkEnv.ID); !strings.Contains(got, "a4=-;") || strings.Contains(got, "a3=-;") {
		t.Fatalf("after the restore, %s holds %s", cmkEnv.ID, got)
	}
	p.run(chromedp.Navigate(envURL), chromedp.WaitVisible(chromedp.ID("copy-link")))

	// Copy to the Microsoft-key environment: refused, nothing changed.
	p.followLink("#copy-link")
	p.accessible("copy")
	p.screenshot("copy")
	p.run(chromedp.SetValue(chromedp.ID("ow-target"), plain.ID), chromedp.Click(chromedp.ID("ow-confirm")))
	p.submit("ow-submit")
	p.wantText("error", "encrypted with")
	if rowsOf(t, c, plain.ID) != plainRows {
		t.Fatal("a refused copy changed the target")
	}
	// A copy between environments under Microsoft's key.
	p.run(chromedp.Navigate(s.url+"/admin/environments/"+plain.ID+"/copy"), chromedp.WaitVisible(chromedp.ID("ow-target")),
		chromedp.SetValue(chromedp.ID("ow-target"), third.ID), chromedp.Click(chromedp.ID("ow-confirm")))
	p.submit("ow-submit")
	for deadline := time.Now().Add(30 * time.Second); !p.holds(opSucceeded); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the copy's page says %q after 30s", p.text("op-state"))
		}
	}
	if got := rowsOf(t, c, third.ID); got != plainRows {
		t.Fatalf("after the copy, %s holds %s, want %s", third.ID, got, plainRows)
	}

	// A re-key that another replica runs (its lease held elsewhere, so
	// this server's runner leaves it alone), slower than a link here: the
	// page follows its done of total without a reload, then reloads to
	// show how it ended.
	rekey := &keyhold.Operation{ID: uuid.NewString(), TenantID: s.creds.TenantID, Kind: keyhold.OpRekey, Target: third.ID, State: keyhold.OperationRunning,
		Step: "reencrypt", Phase: keyhold.OperationInProgress, Done: 1, Total: 4, CreatedBy: patID, CreatedAt: time.Now(), UpdatedAt: time.Now(),
		LeaseOwner: "another-replica", LeaseUntil: time.Now().Add(time.Hour)}
	if err := store.Update(ctx, func(tx keyhold.Tx) error {
		if err := tx.CreateOperation(ctx, rekey); err != nil {
			return err
		}
		e, err := tx.Environment(ctx, third.ID)
		if err != nil {
			return err
		}
		e.LastOperationID = rekey.ID
		return tx.UpdateEnvironment(ctx, e)
	}); err != nil {
		t.Fatal(err)
	}
	advance := func(done int64, state keyhold.OperationState) {
		t.Helper()
		if err := store.Update(ctx, func(tx keyhold.Tx) error {
			op, err := tx.Operation(ctx, rekey.ID)
			if err != nil {
				return err
			}
			op.Done, op.State, op.UpdatedAt = done, state, time.Now()
			if state != keyhold.OperationRunning {
				op.Step, op.Phase, op.FinishedAt = "", "", time.Now()
			}
			return tx.UpdateOperation(ctx, op)
		}); err != nil {
			t.Fatal(err)
		}
	}
	p.run(chromedp.Navigate(s.url+"/admin/environments/"+third.ID), chromedp.WaitVisible(chromedp.ID("envop-rekey")))
	p.wantText("envop-rekey", "Re-key in progress", "1 of 4")
	p.accessible("environment (re-key running)")
	p.screenshot("environment-rekey")
	p.run(chromedp.Evaluate[chromedp.Void](`window.__khSame = true`))
	advance(3, keyhold.OperationRunning)
	for deadline := time.Now().Add(10 * time.Second); !p.holds(`window.__khSame === true && document.getElementById('envop-rekey').textContent.includes('3 of 4')`); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the page did not follow the re-key: it says %q", p.text("envop-rekey"))
		}
	}
	advance(4, keyhold.OperationSucceeded)
	for deadline := time.Now().Add(10 * time.Second); !p.holds(`window.__khSame !== true && document.readyState === 'complete' && document.getElementById('envop-rekey').textContent.includes('Re-key Succeeded')`); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the page did not show how the re-key ended: it says %q", p.text("envop-rekey"))
		}
	}
	p.wantText("envop-rekey", "4 of 4")

	// What my key protects: the coverage table and the flow's fix.
	p.run(chromedp.Navigate(envURL), chromedp.WaitVisible(chromedp.ID("coverage-link")))
	p.followLink("#coverage-link")
	p.wantText("coverage", "rows", "Customer-managed key", "backups", "audit")
	p.wantText("platform-flow-list", flowName, keyhold.FlowCategoryRequestURL)
	p.accessible("coverage")
	p.screenshot("coverage")

	// Kim, the key vault administrator: the key's rotation policy (a bad
	// period refused, with nothing saved), who may wrap and unwrap, and
	// the vault's network rules.
	const kimUPN, kimPW = "kim@contoso.example", "Kim's long passphrase for keyhold"
	kim, err := c.CreateUser(ctx, "Kim", kimUPN, kimPW)
	if err != nil {
		t.Fatal(err)
	}
	vaultID := pol.Properties.Encryption.KeyVault.ID
	owner, _ := keyhold.FindRoleDefinition(keyhold.RoleOwner)
	kva, _ := keyhold.FindRoleDefinition(keyhold.RoleKeyVaultAdministrator)
	for _, a := range []*keyhold.RoleAssignment{
		{Scope: "/subscriptions/" + s.creds.SubscriptionID, RoleDefinitionID: owner.ID, PrincipalID: kim.User.ID, PrincipalType: "User"},
		{Scope: vaultID, RoleDefinitionID: kva.ID, PrincipalID: kim.User.ID, PrincipalType: "User"},
	} {
		if err := c.CreateRoleAssignment(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	k := &page{t: t, ctx: adminBrowser(t)}
	signIn(k, s.url, s.creds.TenantID, appID, kimUPN, kimPW)
	vaultPath := "/admin/vaults/" + s.creds.SubscriptionID + "/cmk/contoso-kv"
	k.run(chromedp.Navigate(s.url+vaultPath), chromedp.WaitVisible(chromedp.ID("rotation")))
	if got := k.text("rotation-cmk"); strings.Contains(got, "Rotate") {
		t.Fatalf("a new key rotates already: %q", got)
	}
	k.wantText("wrapper-list", pol.Identity.PrincipalID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, "Yes")
	k.wantText("net-default", "Allow")
	k.wantText("net-bypass", "Allowed")
	k.run(chromedp.SetValue(chromedp.ID("days-cmk"), "ninety"))
	k.submit("set-rotation-cmk")
	k.wantText("error", `"ninety"`, "whole number of days")
	rotation := func() string {
		t.Helper()
		status, b := s.call(t, "GET", "/vaults/contoso-kv/keys/cmk/rotationpolicy?api-version=7.5", keyhold.AudienceVault, "")
		return itoa(int64(status)) + " " + string(b)
	}
	if got := rotation(); strings.Contains(got, "P90D") || strings.Contains(got, `"Rotate"`) {
		t.Fatalf("a refused rotation policy was saved: %s", got)
	}
	k.run(chromedp.SetValue(chromedp.ID("days-cmk"), "90"))
	k.submit("set-rotation-cmk")
	k.wantText("done", "rotation policy is saved")
	k.wantText("rotation-cmk", "Rotate P90D after creation", "Notify P30D before expiry")
	if got := rotation(); !strings.HasPrefix(got, "200 ") || !strings.Contains(got, "P90D") {
		t.Fatalf("the rotation policy through the API: %s", got)
	}
	k.accessible("key vault (rotation, access, network)")
	k.screenshot("vault-rotation-network")
	k.run(chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.url+vaultPath), chromedp.WaitVisible(chromedp.ID("rotation")))
	if eval[bool](k, `document.documentElement.scrollWidth > window.innerWidth`) {
		t.Fatal("the key vault page is wider than a phone")
	}
	k.run(chromedp.EmulateViewport(1280, 800))

	// The webhook, and the lock's event naming who removed the grant.
	p.followLink(`nav a[href="/admin/events"]`)
	p.run(chromedp.SendKeys(chromedp.ID("webhook-url"), "http://hooks.contoso.example/keyhold"))
	p.submit("webhook-save")
	p.wantText("error", "http://hooks.contoso.example/keyhold")
	if set, err := c.TenantSettings(ctx); err != nil || set.WebhookURL != "" {
		t.Fatalf("a refused webhook: %+v, %v", set, err)
	}
	p.run(chromedp.Clear(chromedp.ID("webhook-url")), chromedp.SendKeys(chromedp.ID("webhook-url"), "https://hooks.contoso.example/keyhold"))
	p.submit("webhook-save")
	p.wantText("done", "The webhook is saved")
	p.wantText("webhook-state", "https://hooks.contoso.example/keyhold")
	p.submit("webhook-test")
	p.wantText("done", "A test event is written")
	p.wantText("events", keyhold.EventWebhookTest, "Webhook: Pending")
	as, err := c.ListRoleAssignments(ctx, vaultID, keyhold.AssignmentFilter{PrincipalID: pol.Identity.PrincipalID, AtScope: true})
	if err != nil || len(as) != 1 {
		t.Fatalf("the identity's assignments: %v, %v", as, err)
	}
	if _, err := c.DeleteRoleAssignment(ctx, vaultID, as[0].ID); err != nil {
		t.Fatal(err)
	}
	if h, err := s.p.CheckPolicyHealth(ctx, pol.ID); err != nil || h != keyhold.HealthUnhealthy {
		t.Fatalf("CheckPolicyHealth = %s, %v", h, err)
	}
	p.run(chromedp.Navigate(s.url+"/admin/events"), chromedp.WaitVisible(chromedp.ID("events")))
	p.wantText("events", keyhold.EventEnvironmentLocked, cmkEnv.ID, "Changes in the key vault", as[0].ID)
	p.accessible("events")
	p.screenshot("events")

	// A phone's width: the new pages are no wider than the screen.
	for i, path := range []string{"/admin/environments/" + cmkEnv.ID, "/admin/environments/" + cmkEnv.ID + "/coverage", "/admin/environments/" + plain.ID + "/copy", "/admin/events"} {
		p.run(chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.url+path), chromedp.WaitVisible(chromedp.ID("main")))
		if eval[bool](p, `document.documentElement.scrollWidth > window.innerWidth`) {
			t.Fatalf("%s is wider than a phone", path)
		}
		if i == 0 {
			p.screenshot("environment-backups-phone")
		}
	}
	p.run(chromedp.EmulateViewport(1280, 800))

	// Rita has no role: each page's action is refused with the service's
	// message, and nothing changes.
	const ritaUPN, ritaPW = "rita@contoso.example", "Rita's long passphrase for keyhold"
	if _, err := c.CreateUser(ctx, "Rita", ritaUPN, ritaPW); err != nil {
		t.Fatal(err)
	}
	r := &page{t: t, ctx: adminBrowser(t)}
	signIn(r, s.url, s.creds.TenantID, appID, ritaUPN, ritaPW)
	forced := func(path, form string) string {
		t.Helper()
		return eval[string](r, `fetch('`+path+`', {method: 'POST', body: new URLSearchParams(Object.assign({csrf_token: document.querySelector('input[name=csrf_token]').value}, `+form+`))})
			.then(a => a.text().then(b => a.status + ' ' + new DOMParser().parseFromString(b, 'text/html').getElementById('error').textContent))`)
	}
	const refusal = "403 "
	before, _ := c.ListBackups(ctx, plain.ID)
	for _, tc := range []struct{ path, form string }{
		{"/admin/environments/" + plain.ID + "/backups", `{label: 'forced'}`},
		{"/admin/environments/" + cmkEnv.ID + "/restore", `{backup: '` + bs[0].ID + `', target: '` + cmkEnv.ID + `', confirm: 'overwrite'}`},
		{"/admin/environments/" + plain.ID + "/copy", `{target: '` + third.ID + `', confirm: 'overwrite'}`},
		{"/admin/events", `{action: 'webhook', url: ''}`},
		{"/admin/events", `{action: 'test'}`},
	} {
		if got := forced(tc.path, tc.form); !strings.HasPrefix(got, refusal) || !strings.Contains(strings.ToLower(got), "administrator") {
			t.Fatalf("Rita's forced POST %s answered %q", tc.path, got)
		}
	}
	r.run(chromedp.Navigate(s.url+"/admin/environments/"+plain.ID+"/coverage"), chromedp.WaitVisible(chromedp.ID("error")))
	r.wantText("error", "Administrator")
	r.accessible("coverage (refused)")
	if after, _ := c.ListBackups(ctx, plain.ID); len(after) != len(before) {
		t.Fatalf("Rita's forced backup: %d backups, were %d", len(after), len(before))
	}
	if set, err := c.TenantSettings(ctx); err != nil || set.WebhookURL != "https://hooks.contoso.example/keyhold" {
		t.Fatalf("Rita's forced POST changed the webhook: %+v, %v", set, err)
	}
	if es, err := c.ListEventViews(ctx, 0, 100); err != nil || es[0].Kind == keyhold.EventWebhookTest {
		t.Fatalf("Rita's forced test wrote an event: %+v, %v", es, err)
	}
	if got := forced(vaultPath, `{action: 'rotation-policy', key: 'cmk', days: '0'}`); !strings.HasPrefix(got, refusal) || !strings.Contains(got, "authoriz") {
		t.Fatalf("Rita's forced rotation policy answered %q", got)
	}
	k.run(chromedp.Navigate(s.url+vaultPath), chromedp.WaitVisible(chromedp.ID("rotation")))
	k.wantText("rotation-cmk", "Rotate P90D after creation")
	if e, err := c.FindEnvironment(ctx, third.ID); err != nil || rowsOf(t, c, third.ID) != plainRows || e.State != keyhold.StateEnabled {
		t.Fatalf("Rita's forced copy changed %s: %+v, %v", third.ID, e, err)
	}
}

// adminEchoFlow is a flow with a manual Request trigger.
const adminEchoFlow = `{
  "$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",
  "contentVersion": "1.0.0.0",
  "triggers": {"manual": {"type": "Request", "kind": "Button", "inputs": {"schema": {"type": "object"}}}},
  "actions": {"Compose": {"type": "Compose", "inputs": "@triggerBody()", "runAfter": {}}}
}`

// rowsOf is what an environment holds of the rows the test writes
// (table accounts, ids a1 to a4 and p1): each id with its data, or "-".
func rowsOf(t *testing.T, c *khttp.Client, envID string) string {
	t.Helper()
	var b strings.Builder
	for _, id := range []string{"a1", "a2", "a3", "a4", "p1"} {
		r, err := c.GetRow(context.Background(), envID, "accounts", id)
		switch {
		case keyhold.IsNotFound(err):
			b.WriteString(id + "=-;")
		case err != nil:
			t.Fatalf("GetRow %s %s: %v", envID, id, err)
		default:
			b.WriteString(id + "=" + string(r.Data) + ";")
		}
	}
	return b.String()
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
