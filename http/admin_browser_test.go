package http_test

import (
	"context"
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/keyhold/keyhold"
)

// The admin center in a real Chromium (issue 17), driven by chromedp
// against the whole stack over TLS.

// envRequireChromium, when "1", makes the browser tests fail rather than
// skip without Chromium (scripts/test.sh sets it in CI).
const envRequireChromium = "KEYHOLD_REQUIRE_CHROMIUM"

// envScreenshots names a folder to write the pages' screenshots to
// (docs/screenshots holds a set).
const envScreenshots = "KEYHOLD_SCREENSHOTS"

//go:embed testdata/axe/axe.min.js
var axeSource string

// adminBrowser starts a headless Chromium at 1280×800, or skips t
// without one (fails it if KEYHOLD_REQUIRE_CHROMIUM=1).
func adminBrowser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv(envRequireChromium) == "1" {
			t.Fatalf("Chromium is required (%s=1) but not on the PATH: apt-get install chromium", envRequireChromium)
		}
		t.Skip("skipping the browser test: no chromium on the PATH (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-background-networking", true),
		// The stack's certificate is signed by its own CA.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// page is one browser tab under test.
type page struct {
	t   *testing.T
	ctx context.Context
}

func (p *page) run(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatalf("browser: %v", err)
	}
}

// text is the text of the element with id.
func (p *page) text(id string) string {
	p.t.Helper()
	p.run(chromedp.WaitVisible(chromedp.ID(id)))
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		p.t.Fatalf("browser: %v", err)
	}
	return s
}

// wantText fails unless the element with id says each of hints.
func (p *page) wantText(id string, hints ...string) {
	p.t.Helper()
	s := p.text(id)
	for _, h := range hints {
		if !strings.Contains(s, h) {
			p.t.Fatalf("#%s says %q, not %q", id, s, h)
		}
	}
}

// eval evaluates a script in the page (awaiting a promise).
func eval[T any](p *page, script string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](script, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("browser: %v", err)
	}
	return v
}

// accessible runs axe-core in the page: no serious or critical
// violation.
func (p *page) accessible(name string) {
	p.t.Helper()
	if !eval[bool](p, axeSource+";\ntypeof axe === 'object'") {
		p.t.Fatal("axe-core did not load")
	}
	found := eval[[]string](p, `axe.run(document).then(r => r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
		.map(v => v.impact + ' ' + v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', ')))`)
	if len(found) > 0 {
		p.t.Fatalf("axe-core on the %s page:\n%s", name, strings.Join(found, "\n"))
	}
}

// screenshot writes the page to $KEYHOLD_SCREENSHOTS/name.png, if set.
func (p *page) screenshot(name string) {
	p.t.Helper()
	dir := os.Getenv(envScreenshots)
	if dir == "" {
		return
	}
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// noMarkup fails if the page holds an element that a name's markup made.
func (p *page) noMarkup() {
	p.t.Helper()
	if n := eval[int](p, `document.querySelectorAll('img, main script, [onerror]').length`); n != 0 {
		p.t.Fatalf("the page holds %d elements made of a name's markup", n)
	}
}

// xssEnvName is an environment's name made of markup.
const xssEnvName = `Contoso "><img src=x onerror=alert(1)><script>alert(2)</script>`

// TestAdminCenterChromium walks the spec's flow in the admin center, as
// the platform administrator Pat (a user with Power Platform
// Administrator and Reader on the policy), in Chromium: sign in; see the
// environment, whose name is markup, as text; turn Managed Environment
// on; see Customer on Environment encryption once linked; see the lock
// banner when the key vault admin (the bootstrap administrator, over the
// API) revokes the policy identity's grant; Re-enable refused with the
// API's message while access is gone, then accepted; sign out. Each page
// passes axe-core, and the session cookie has its flags in the browser.
func TestAdminCenterChromium(t *testing.T) {
	bctx := adminBrowser(t)
	s := newCMKStack(t)
	ctx := context.Background()
	c := s.client
	sub := "/subscriptions/" + s.creds.SubscriptionID
	vaultID := sub + "/resourceGroups/cmk/providers/Microsoft.KeyVault/vaults/contoso-kv"

	// The admin center's application, and Pat.
	app, err := c.CreateServicePrincipal(ctx, "Keyhold admin center")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddRedirectURI(ctx, app.Principal.AppID, s.url+"/admin/callback"); err != nil {
		t.Fatal(err)
	}
	const patUPN, patPW = "pat@contoso.example", "Pat's long passphrase for keyhold"
	pat, err := c.CreateUser(ctx, "Pat", patUPN, patPW)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AssignDirectoryRole(ctx, pat.User.ID, keyhold.RolePowerPlatformAdministrator); err != nil {
		t.Fatal(err)
	}
	// The key vault admin: vault, key, policy, the identity's grant,
	// and Reader on the policy for Pat.
	pol := s.setUpPolicy(t)
	reader, _ := keyhold.FindRoleDefinition(keyhold.RoleReader)
	if err := c.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Scope: pol.ID, RoleDefinitionID: reader.ID, PrincipalID: pat.User.ID, PrincipalType: "User"}); err != nil {
		t.Fatal(err)
	}
	env := &keyhold.Environment{DisplayName: xssEnvName, Location: "europe", SKU: keyhold.SKUProduction}
	other := &keyhold.Environment{DisplayName: "Fabrikam US", Location: "unitedstates", SKU: keyhold.SKUProduction, Managed: true}
	for _, e := range []*keyhold.Environment{env, other} {
		if err := c.CreateEnvironment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}

	p := &page{t: t, ctx: bctx}
	// Sign in.
	p.run(chromedp.Navigate(s.url+"/admin/"), chromedp.WaitVisible(chromedp.ID("tenant")))
	p.accessible("sign-in")
	p.screenshot("signin")
	p.run(
		chromedp.SendKeys(chromedp.ID("tenant"), s.creds.TenantID),
		chromedp.SendKeys(chromedp.ID("client_id"), app.Principal.AppID),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), patUPN),
		chromedp.SendKeys(chromedp.ID("password"), patPW),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("environments")),
	)
	p.wantText("who", patUPN)
	got, err := chromedp.Run(bctx, func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{s.url + "/admin/"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	cookies := got.Cookies
	session := false
	for _, ck := range cookies {
		if ck.Name == "__Host-keyhold-admin" {
			session = true
			if !ck.Secure || !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteStrict || ck.Path != "/" {
				t.Fatalf("the session cookie in the browser: %+v", ck)
			}
		}
	}
	if !session {
		t.Fatalf("no session cookie in the browser: %+v", cookies)
	}
	script := eval[string](p, `document.cookie`)
	if strings.Contains(script, "keyhold-admin") {
		t.Fatalf("the page's script reads the session cookie: %q", script)
	}

	// The environments list: the name is text.
	name, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#environments a[href$="`+env.ID+`"]`)))
	if err != nil {
		t.Fatal(err)
	}
	if name != xssEnvName {
		t.Fatalf("the list shows the name as %q", name)
	}
	p.noMarkup()
	p.wantText("count", "2 of 2")
	p.accessible("environments")
	p.screenshot("environments")
	// Search.
	p.run(chromedp.SendKeys(chromedp.ID("q"), "nothing like it"), chromedp.Click(chromedp.ID("apply")),
		chromedp.WaitVisible(chromedp.ID("no-match")))
	p.wantText("count", "0 of 2")

	// The environment's page; Managed Environment on.
	envURL := s.url + "/admin/environments/" + env.ID
	p.run(chromedp.Navigate(envURL), chromedp.WaitVisible(chromedp.ID("env-name")))
	if got := p.text("env-name"); got != xssEnvName {
		t.Fatalf("the page shows the name as %q", got)
	}
	p.noMarkup()
	p.wantText("key-managed-by", "Microsoft")
	p.wantText("managed-state", "is off")
	p.run(chromedp.Click(chromedp.ID("managed-toggle")), chromedp.WaitVisible(chromedp.ID("done")))
	p.wantText("done", "Managed Environment is on.")
	p.wantText("managed-state", "is on")

	// The policy's health is checked (the server does so on its own).
	if h, err := s.p.CheckPolicyHealth(ctx, pol.ID); err != nil || h != keyhold.HealthHealthy {
		t.Fatalf("CheckPolicyHealth = %s, %v", h, err)
	}
	// Customer-managed key: the policy, Edit policy, Add environment
	// (only the policy's region), watching the link to Succeeded.
	p.run(chromedp.Click(chromedp.CSS(`nav a[href="/admin/cmk"]`)), chromedp.WaitVisible(chromedp.ID("policies")))
	p.wantText("policies", "contoso-cmk", "contoso-kv", "cmk", "Healthy")
	p.accessible("enterprise policies")
	p.screenshot("cmk-policies")
	p.run(chromedp.Click(chromedp.CSS(`a[aria-label="Edit policy contoso-cmk"]`)), chromedp.WaitVisible(chromedp.ID("candidates")))
	p.wantText("add-checks", "europe", "1 in other regions", "Managed Environment", "Reader")
	p.wantText("candidates", xssEnvName)
	p.noMarkup()
	if strings.Contains(p.text("candidates"), "Fabrikam US") {
		t.Fatal("Add environment offers an environment of another region")
	}
	p.accessible("policy")
	p.screenshot("cmk-policy")
	// A POST without the CSRF token (as another site's form would send
	// it): refused, nothing linked.
	noToken := eval[int](p, `fetch(location.pathname, {method: 'POST', body: new URLSearchParams({action: 'add', env: '`+env.ID+`'})}).then(a => a.status)`)
	if e, err := c.FindEnvironment(ctx, env.ID); noToken != 403 || err != nil || e.PolicyID != "" {
		t.Fatalf("Add environment without the CSRF token: %d; environment %+v, %v", noToken, e, err)
	}
	p.run(chromedp.Click(chromedp.ID("add-"+env.ID)), chromedp.WaitVisible(chromedp.ID("op")))
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(p.text("op-state"), "Succeeded"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the link's page says %q after 30s", p.text("op-state"))
		}
	}
	p.wantText("op-percent", "100%")
	p.accessible("operation")
	p.screenshot("operation")
	p.run(chromedp.Navigate(s.url+"/admin/cmk?tab=environments"), chromedp.WaitVisible(chromedp.ID("linked")))
	p.wantText("linked", xssEnvName, "contoso-cmk", "link: Succeeded")
	p.noMarkup()
	p.run(chromedp.Navigate(envURL), chromedp.WaitVisible(chromedp.ID("encryption")))
	p.wantText("key-managed-by", "Customer")
	p.wantText("enc-policy", "contoso-cmk")
	p.wantText("enc-key", "cmk")
	p.wantText("enc-health", "Healthy")
	p.accessible("environment")
	p.screenshot("environment")

	// The key vault admin revokes the grant: the lock banner names the
	// policy.
	grants, err := c.ListRoleAssignments(ctx, vaultID, keyhold.AssignmentFilter{PrincipalID: pol.Identity.PrincipalID})
	if err != nil || len(grants) == 0 {
		t.Fatalf("the policy identity's grants: %v, %v", grants, err)
	}
	for _, a := range grants {
		if _, err := c.DeleteRoleAssignment(ctx, a.Scope, a.ID); err != nil {
			t.Fatal(err)
		}
	}
	if h, err := s.p.CheckPolicyHealth(ctx, pol.ID); err != nil || h != keyhold.HealthUnhealthy {
		t.Fatalf("CheckPolicyHealth = %s, %v", h, err)
	}
	start := time.Now()
	p.run(chromedp.Navigate(envURL), chromedp.WaitVisible(chromedp.ID("lock-banner")))
	if time.Since(start) > 5*time.Second {
		t.Fatalf("the lock banner took %v", time.Since(start))
	}
	p.wantText("lock-banner", "This environment is locked", "contoso-cmk", "re-enable")
	p.wantText("env-state", "Locked")
	p.accessible("locked environment")
	p.screenshot("environment-locked")

	// Re-enable before access is back: the API's refusal, still locked.
	p.run(chromedp.Click(chromedp.ID("reenable")), chromedp.WaitVisible(chromedp.ID("error")))
	p.wantText("error", "stays locked")
	p.wantText("env-state", "Locked")
	if e, err := c.FindEnvironment(ctx, env.ID); err != nil || e.State != keyhold.StateLocked {
		t.Fatalf("after a refused re-enable: %+v, %v", e, err)
	}

	// Access back: Re-enable works.
	s.grant(t, vaultID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, pol.Identity.PrincipalID)
	if h, err := s.p.CheckPolicyHealth(ctx, pol.ID); err != nil || h != keyhold.HealthHealthy {
		t.Fatalf("CheckPolicyHealth = %s, %v", h, err)
	}
	p.run(chromedp.Click(chromedp.ID("reenable")), chromedp.WaitVisible(chromedp.ID("done")))
	p.wantText("done", "enabled again")
	p.wantText("env-state", "Enabled")
	if eval[int](p, `document.querySelectorAll('#lock-banner').length`) != 0 {
		t.Fatal("the lock banner is still shown")
	}

	// Remove environment: the 30-day warning before and after.
	policyURL := s.url + "/admin/cmk/policies/" + s.creds.SubscriptionID + "/cmk/contoso-cmk"
	p.run(chromedp.Navigate(policyURL), chromedp.WaitVisible(chromedp.ID("linked-envs")))
	p.wantText("remove-warning", "30 days")
	p.run(chromedp.Click(chromedp.ID("remove-"+env.ID)), chromedp.WaitVisible(chromedp.ID("op")))
	p.wantText("op-warning", "for 30 days", "cmk")
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(p.text("op-state"), "Succeeded"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the unlink's page says %q after 30s", p.text("op-state"))
		}
	}
	p.run(chromedp.Navigate(envURL), chromedp.WaitVisible(chromedp.ID("encryption")))
	p.wantText("key-managed-by", "Microsoft")

	// A phone's width: nothing wider than the screen.
	p.run(chromedp.EmulateViewport(390, 844), chromedp.Navigate(envURL), chromedp.WaitVisible(chromedp.ID("encryption")))
	if eval[bool](p, `document.documentElement.scrollWidth > window.innerWidth`) {
		t.Fatal("the environment page is wider than a phone")
	}
	p.screenshot("environment-phone")
	p.run(chromedp.Navigate(s.url+"/admin/environments"), chromedp.WaitVisible(chromedp.ID("environments")))
	p.accessible("environments (phone)")
	p.run(chromedp.EmulateViewport(1280, 800))

	// Rita, a Reader of the policy but no platform administrator, sees
	// it with Add environment disabled; a forced POST is refused with the
	// API's message and links nothing.
	const ritaUPN, ritaPW = "rita@contoso.example", "Rita's long passphrase for keyhold"
	rita, err := c.CreateUser(ctx, "Rita", ritaUPN, ritaPW)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Scope: pol.ID, RoleDefinitionID: reader.ID, PrincipalID: rita.User.ID, PrincipalType: "User"}); err != nil {
		t.Fatal(err)
	}
	r := &page{t: t, ctx: adminBrowser(t)}
	r.run(chromedp.Navigate(s.url+"/admin/?tenant="+s.creds.TenantID+"&client_id="+app.Principal.AppID), chromedp.WaitVisible(chromedp.ID("signin")),
		chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), ritaUPN), chromedp.SendKeys(chromedp.ID("password"), ritaPW),
		chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.ID("who")))
	r.run(chromedp.Navigate(policyURL), chromedp.WaitVisible(chromedp.ID("read-only")))
	r.wantText("pol-name", "contoso-cmk")
	r.wantText("read-only", "can see this policy but not change")
	if !eval[bool](r, `document.getElementById('add-disabled').disabled`) {
		t.Fatal("a Reader's Add environment button is not disabled")
	}
	r.accessible("policy (Reader)")
	forced := eval[string](r, `fetch(location.pathname, {method: 'POST', body: new URLSearchParams({
		csrf_token: document.querySelector('input[name=csrf_token]').value, action: 'add', env: '`+env.ID+`'})})
		.then(a => a.text().then(b => a.status + ' ' + new DOMParser().parseFromString(b, 'text/html').getElementById('error').textContent))`)
	if !strings.HasPrefix(forced, "403") || !strings.Contains(forced, "may not administer environments") || !strings.Contains(r.text("read-only"), "may not administer environments") {
		t.Fatalf("a Reader's forced Add environment answered %q", forced)
	}
	if e, err := c.FindEnvironment(ctx, env.ID); err != nil || e.PolicyID != "" || e.KeyManagedBy != keyhold.KeyManagedByMicrosoft {
		t.Fatalf("after a Reader's forced add: %+v, %v", e, err)
	}

	// Sign out: back to the sign-in form; the pages are closed.
	p.run(chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("done")))
	p.wantText("done", "You have signed out.")
	p.run(chromedp.Navigate(envURL), chromedp.WaitVisible(chromedp.ID("tenant")))
}
