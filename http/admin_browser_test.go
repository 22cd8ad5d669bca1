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
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID(id)))
	s := ""
	if err == nil {
		s, err = chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
	}
	if err != nil {
		var body string
		body, _ = chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.querySelector('main') ? document.querySelector('main').innerText : document.body.innerText`))
		p.t.Fatalf("no #%s on the page (%v); it says:\n%s", id, err, body)
	}
	return s
}

// submit clicks the button with id and waits for the next page to load.
func (p *page) submit(id string) {
	p.t.Helper()
	p.follow(chromedp.Click(chromedp.ID(id)), "#"+id)
}

// followLink clicks the link or button that matches a CSS selector and waits for the
// next page to load.
func (p *page) followLink(css string) {
	p.t.Helper()
	p.follow(chromedp.Click(chromedp.CSS(css)), css)
}

// follow runs click and waits until another page has loaded.
func (p *page) follow(click chromedp.Action[chromedp.Void], id string) {
	p.t.Helper()
	p.run(chromedp.Evaluate[chromedp.Void](`window.__khOld = true`), click)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		loaded, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool](`window.__khOld !== true && document.readyState === 'complete'`))
		if err == nil && loaded {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("clicking #%s loaded no page: %v", id, err)
		}
	}
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

// opSucceeded is true on an operation's page that shows it Succeeded,
// finished (its script reloads the page once it is, and polls no more).
const opSucceeded = `(() => { const op = document.getElementById('op'), st = document.getElementById('op-state');
	return !!(op && st && op.dataset.finished === 'true' && document.readyState === 'complete' && st.textContent.includes('Succeeded')) })()`

// holds evaluates a condition in the page; false while the page is
// being replaced.
func (p *page) holds(js string) bool {
	ok, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool](js))
	return err == nil && ok
}

// signIn signs in to the admin center in p's browser.
func signIn(p *page, base, tenant, app, upn, pw string) {
	p.t.Helper()
	p.run(chromedp.Navigate(base+"/admin/?tenant="+tenant+"&client_id="+app), chromedp.WaitVisible(chromedp.ID("signin")),
		chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), upn), chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.ID("who")))
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

// TestAdminCenterChromium walks the spec's flow in the admin center in
// Chromium, with two people in two browsers. Kim, the key vault
// administrator (a user with Owner on the subscription), signs in,
// creates the vault (soft delete, purge protection), is refused its keys
// with the data plane's message, grants herself Key Vault Administrator,
// creates and rotates the key, deploys the policy with New policy (the
// spec's template), grants Pat Reader on it and its identity Key Vault
// Crypto Service Encryption User on the vault. Pat, the platform
// administrator, signs in (the session cookie's flags checked in the
// browser, unreadable to scripts), sees an environment whose name is
// markup as text, searches, turns Managed Environment on, is refused Add
// environment without the CSRF token, adds the environment from the
// policy's page (another region's is not offered) watching the operation
// to Succeeded, and sees Customer on Environment encryption. Kim removes
// the grant: Pat sees the lock banner within seconds, is refused
// Re-enable with the API's message until Kim grants again, then
// re-enables; Pat removes the environment after the 30-day warning. Rita,
// a Reader of the policy, sees Add environment disabled and a forced POST
// is refused. Each main page passes axe-core.
func TestAdminCenterChromium(t *testing.T) {
	bctx := adminBrowser(t)
	s := newCMKStack(t)
	ctx := context.Background()
	c := s.client
	sub := "/subscriptions/" + s.creds.SubscriptionID

	// The admin center's application, and Pat.
	appID := s.adminApp(t)
	patID := s.platformAdmin(t, "")
	// Kim, the key vault administrator: a user with Owner on the
	// subscription (the operator's doing, over the API).
	const kimUPN, kimPW = "kim@contoso.example", "Kim's long passphrase for keyhold"
	kim, err := c.CreateUser(ctx, "Kim", kimUPN, kimPW)
	if err != nil {
		t.Fatal(err)
	}
	owner, _ := keyhold.FindRoleDefinition(keyhold.RoleOwner)
	if err := c.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Scope: sub, RoleDefinitionID: owner.ID, PrincipalID: kim.User.ID, PrincipalType: "User"}); err != nil {
		t.Fatal(err)
	}
	reader, _ := keyhold.FindRoleDefinition(keyhold.RoleReader)
	k := &page{t: t, ctx: adminBrowser(t)}
	signIn(k, s.url, s.creds.TenantID, appID, kimUPN, kimPW)
	k.wantText("who", kimUPN)

	// Kim creates the vault (soft delete, purge protection) ...
	k.followLink(`nav a[href="/admin/vaults"]`)
	k.run(chromedp.SendKeys(chromedp.ID("vault-name"), "contoso-kv"))
	k.submit("create-vault-button")
	k.wantText("done", "key vault is created")
	k.wantText("vault-purge", "On")
	// ... is refused its keys as an Owner (the data plane's message), so
	// grants herself Key Vault Administrator, and creates and rotates
	// the key.
	k.wantText("keys-error", "not authorized")
	k.run(chromedp.SendKeys(chromedp.ID("grant-principal"), kim.User.ID), chromedp.SetValue(chromedp.ID("grant-role"), keyhold.RoleKeyVaultAdministrator))
	k.submit("grant")
	k.wantText("done", "role is assigned")
	k.wantText("assignments", kim.User.ID, keyhold.RoleKeyVaultAdministrator)
	k.run(chromedp.SendKeys(chromedp.ID("key-name"), "cmk"), chromedp.SetValue(chromedp.ID("key-type"), "RSA"))
	k.submit("create-key-button")
	k.wantText("done", "key is created")
	k.submit("rotate-cmk")
	k.wantText("done", "new version")
	if n := eval[int](k, `document.querySelectorAll('#key-cmk li').length`); n != 2 {
		t.Fatalf("key cmk shows %d versions after a rotation, want 2", n)
	}
	k.accessible("key vault")
	k.screenshot("vault")
	vaultURL := eval[string](k, `location.pathname`)

	// New policy: the spec's template through the deployments API.
	k.followLink(`nav a[href="/admin/cmk"]`)
	k.submit("new-policy-link")
	k.accessible("new policy")
	k.screenshot("new-policy")
	k.run(chromedp.SendKeys(chromedp.ID("policy-name"), "contoso-cmk"), chromedp.SendKeys(chromedp.ID("policy-key"), "cmk"))
	k.submit("deploy")
	k.wantText("done", "policy is deployed")
	k.wantText("pol-region", "europe")
	identity := k.text("pol-identity")
	// Reader on the policy for Pat.
	k.run(chromedp.SendKeys(chromedp.ID("grant-principal"), patID), chromedp.SetValue(chromedp.ID("grant-role"), keyhold.RoleReader))
	k.submit("grant")
	k.wantText("assignments", patID, keyhold.RoleReader)
	// The identity's grant on the vault.
	k.run(chromedp.Navigate(s.url+vaultURL), chromedp.WaitVisible(chromedp.ID("grant-principal")),
		chromedp.SendKeys(chromedp.ID("grant-principal"), identity), chromedp.SetValue(chromedp.ID("grant-role"), keyhold.RoleKeyVaultCryptoServiceEncryptUser))
	k.submit("grant")
	k.wantText("assignments", identity, keyhold.RoleKeyVaultCryptoServiceEncryptUser)
	pols, err := c.Policies().ListBySubscription(ctx, s.creds.SubscriptionID)
	if err != nil || len(pols) != 1 || pols[0].PrincipalID != identity {
		t.Fatalf("policies after New policy: %+v, %v", pols, err)
	}
	pol := pols[0]

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
	signIn(p, s.url, s.creds.TenantID, appID, patUPN, patPW)
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
	p.run(chromedp.SendKeys(chromedp.ID("q"), "nothing like it"))
	p.submit("apply")
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
	p.submit("managed-toggle")
	p.wantText("done", "Managed Environment is on.")
	p.wantText("managed-state", "is on")

	// The policy's health is checked (the server does so on its own).
	if h, err := s.p.CheckPolicyHealth(ctx, pol.ID()); err != nil || h != keyhold.HealthHealthy {
		t.Fatalf("CheckPolicyHealth = %s, %v", h, err)
	}
	// Customer-managed key: the policy, Edit policy, Add environment
	// (only the policy's region), watching the link to Succeeded.
	p.followLink(`nav a[href="/admin/cmk"]`)
	p.wantText("policies", "contoso-cmk", "contoso-kv", "cmk", "Healthy")
	p.accessible("enterprise policies")
	p.screenshot("cmk-policies")
	p.followLink(`a[aria-label="Edit policy contoso-cmk"]`)
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
	p.submit("add-" + env.ID)
	for deadline := time.Now().Add(30 * time.Second); !p.holds(opSucceeded); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the link's page says %q after 30s", p.text("op-state"))
		}
	}
	p.wantText("op-percent", "100%")
	p.accessible("operation")
	p.screenshot("operation")
	// The policy's page: the current version is in use, by one key.
	policyURL := s.url + "/admin/cmk/policies/" + s.creds.SubscriptionID + "/cmk/contoso-cmk"
	p.run(chromedp.Navigate(policyURL), chromedp.WaitVisible(chromedp.ID("versions")))
	p.wantText("versions", "Yes\t1", "In use")
	p.run(chromedp.Navigate(s.url+"/admin/cmk?tab=environments"), chromedp.WaitVisible(chromedp.ID("linked")))
	p.wantText("linked", xssEnvName, "contoso-cmk", "link: Succeeded")
	p.noMarkup()
	p.run(chromedp.Navigate(envURL), chromedp.WaitVisible(chromedp.ID("encryption")))
	p.wantText("key-managed-by", "Customer")
	p.wantText("enc-policy", "contoso-cmk")
	p.wantText("enc-key", "cmk")
	p.wantText("enc-health", "Healthy")
	// The environment holds no rows yet: its finished link says so, not
	// "0 of ?".
	p.wantText("envop-link", "Link Succeeded", "nothing to move")
	p.accessible("environment")
	p.screenshot("environment")

	// The key vault admin revokes the grant: the lock banner names the
	// policy.
	k.run(chromedp.Navigate(s.url+vaultURL), chromedp.WaitVisible(chromedp.ID("assignments")))
	k.followLink(`button[aria-label="Remove ` + keyhold.RoleKeyVaultCryptoServiceEncryptUser + ` of ` + identity + `"]`)
	k.wantText("done", "removed")
	if h, err := s.p.CheckPolicyHealth(ctx, pol.ID()); err != nil || h != keyhold.HealthUnhealthy {
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
	p.submit("reenable")
	p.wantText("error", "stays locked")
	p.wantText("env-state", "Locked")
	if e, err := c.FindEnvironment(ctx, env.ID); err != nil || e.State != keyhold.StateLocked {
		t.Fatalf("after a refused re-enable: %+v, %v", e, err)
	}

	// Access back: Re-enable works.
	k.run(chromedp.SendKeys(chromedp.ID("grant-principal"), identity), chromedp.SetValue(chromedp.ID("grant-role"), keyhold.RoleKeyVaultCryptoServiceEncryptUser))
	k.submit("grant")
	k.wantText("assignments", identity)
	if h, err := s.p.CheckPolicyHealth(ctx, pol.ID()); err != nil || h != keyhold.HealthHealthy {
		t.Fatalf("CheckPolicyHealth = %s, %v", h, err)
	}
	p.submit("reenable")
	p.wantText("done", "enabled again")
	p.wantText("env-state", "Enabled")
	if eval[int](p, `document.querySelectorAll('#lock-banner').length`) != 0 {
		t.Fatal("the lock banner is still shown")
	}

	// The audit timeline, filtered to the environment.
	p.followLink(`nav a[href="/admin/audit"]`)
	p.run(chromedp.SendKeys(chromedp.ID("audit-env"), env.ID))
	p.submit("audit-apply")
	p.wantText("timeline", env.ID)
	p.noMarkup()
	p.accessible("audit")
	p.screenshot("audit")

	// Remove environment: the 30-day warning before and after.
	p.run(chromedp.Navigate(policyURL), chromedp.WaitVisible(chromedp.ID("linked-envs")))
	p.wantText("remove-warning", "30 days")
	p.submit("remove-" + env.ID)
	p.wantText("op-warning", "for 30 days", "cmk")
	for deadline := time.Now().Add(30 * time.Second); !p.holds(opSucceeded); time.Sleep(200 * time.Millisecond) {
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
	if err := c.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Scope: pol.ID(), RoleDefinitionID: reader.ID, PrincipalID: rita.User.ID, PrincipalType: "User"}); err != nil {
		t.Fatal(err)
	}
	r := &page{t: t, ctx: adminBrowser(t)}
	signIn(r, s.url, s.creds.TenantID, appID, ritaUPN, ritaPW)
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
	p.submit("signout")
	p.wantText("done", "You have signed out.")
	p.run(chromedp.Navigate(envURL), chromedp.WaitVisible(chromedp.ID("tenant")))
}
