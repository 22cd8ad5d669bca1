package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// EnvRequireChromium, when "1", makes the browser tests fail rather than
// skip without Chromium (scripts/test.sh sets it in CI).
const EnvRequireChromium = "KEYHOLD_REQUIRE_CHROMIUM"

// chromiumPath finds Debian's chromium (or another Chrome), or skips t
// without one (fails it if KEYHOLD_REQUIRE_CHROMIUM=1).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(EnvRequireChromium) == "1" {
		t.Fatalf("Chromium is required (%s=1) but not on the PATH: apt-get install chromium", EnvRequireChromium)
	}
	t.Skip("skipping the browser test: no chromium on the PATH (apt-get install chromium)")
	return ""
}

// browserContext starts a headless Chromium for t.
func browserContext(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		// The test server's certificate is signed by its own CA, which
		// Chromium's store doesn't hold.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

var signInPrompt = regexp.MustCompile(`open (https://\S+) in a browser and enter the code ([A-Z0-9]{4}-[A-Z0-9]{4})`)

// TestDeviceCodeLoginChromium: a person signs in from the command line
// with the device code, in a real Chromium: "keyhold login --device-code"
// prints the page and the code, the browser enters the code, user name
// and password, and the command saves the login, which then works on the
// API (refreshing, and rotating the saved refresh token, at each run).
func TestDeviceCodeLoginChromium(t *testing.T) {
	bctx := browserContext(t)
	bootstrap := startServer(t)
	admin := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	admin.ok("login", "--bootstrap", bootstrap)
	const pw = "kim's long passphrase for keyhold"
	var user struct {
		ObjectID string `json:"objectId"`
	}
	admin.okJSON(&user, "identity", "user", "create", "--name", "Kim", "--upn", "kim@contoso.example", "--password", pw)
	admin.ok("identity", "role", "assign", "--role", "Power Platform Administrator", "--assignee", user.ObjectID)

	home := t.TempDir()
	person := &session{t: t, env: testEnv{"KEYHOLD_HOME": home}}
	// Before signing in: refusals.
	person.fails(2, "leave out --client-id", "login", "--device-code", "--bootstrap", bootstrap, "--client-id", "x")

	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), NewFactory(&IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr}, person.env.get),
			[]string{"login", "--device-code", "--bootstrap", bootstrap})
	}()
	var m []string
	for deadline := time.Now().Add(30 * time.Second); m == nil; time.Sleep(50 * time.Millisecond) {
		if m = signInPrompt.FindStringSubmatch(stderr.String()); m == nil && time.Now().After(deadline) {
			t.Fatalf("keyhold login --device-code printed no page and code: %q", stderr.String())
		}
		select {
		case code := <-done:
			t.Fatalf("keyhold login --device-code ended (%d) before the sign-in: %s", code, stderr.String())
		default:
		}
	}
	page, userCode := m[1], m[2]

	// A wrong password first: the page says so, the command keeps waiting.
	err := chromedp.Do(bctx,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("user_code")),
		chromedp.SendKeys(chromedp.ID("user_code"), strings.ToLower(userCode)),
		chromedp.SendKeys(chromedp.ID("username"), "kim@contoso.example"),
		chromedp.SendKeys(chromedp.ID("password"), "not kim's password"),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("error")),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if errText, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("error"))); err != nil || !strings.Contains(errText, "invalid username or password") {
		t.Fatalf("the page said %q (%v) after a wrong password", errText, err)
	}
	// The page kept the code and user name, not the password.
	err = chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("done")),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if doneText, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("done"))); err != nil || !strings.Contains(doneText, "You have signed in as kim@contoso.example") {
		t.Fatalf("the page said %q (%v)", doneText, err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("keyhold login --device-code: exit %d\n%s", code, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("keyhold login --device-code did not end after the approval: %s", stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "as kim@contoso.example, object "+user.ObjectID) {
		t.Fatalf("login printed %q", out)
	}

	// The saved login holds a refresh token, not the password; it works
	// on the API, and each run rotates it.
	first, err := loadLogin(home)
	if err != nil || first.RefreshToken == "" || first.ClientSecret != "" || first.UserName != "kim@contoso.example" {
		t.Fatalf("saved login %+v, %v", first, err)
	}
	raw, _ := os.ReadFile(filepath.Join(home, loginFile))
	if strings.Contains(string(raw), pw) {
		t.Fatal("the saved login holds the password")
	}
	assertMode(t, filepath.Join(home, loginFile), 0o600)
	person.ok("env", "create", "--name", "Kim's", "--location", "europe")
	second, _ := loadLogin(home)
	if second.RefreshToken == first.RefreshToken {
		t.Fatal("the saved refresh token did not rotate")
	}
	if out := person.ok("env", "list"); !strings.Contains(out, "Kim's") {
		t.Fatalf("env list printed %q", out)
	}
	// The old refresh token is spent: reusing it (a stolen copy of the
	// file) revokes the sign-in, and the command says to sign in again.
	if err := saveLogin(home, first); err != nil {
		t.Fatal(err)
	}
	person.fails(1, "sign in again", "env", "list")
}

// TestRedirectURICommands: a Global Administrator registers, lists and
// removes an application's redirect URIs; a bad one is refused and
// nothing is registered.
func TestRedirectURICommands(t *testing.T) {
	bootstrap := startServer(t)
	admin := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	admin.ok("login", "--bootstrap", bootstrap)
	var sp newSPJSON
	admin.okJSON(&sp, "identity", "sp", "create", "--name", "web-ui")
	admin.fails(1, "use https", "identity", "sp", "redirect-uri", "add", "--app-id", sp.AppID, "--uri", "http://ui.contoso.example/cb")
	if out := admin.ok("identity", "sp", "redirect-uri", "list", "--app-id", sp.AppID); out != "" {
		t.Fatalf("after a refusal, list printed %q", out)
	}
	const uri = "https://ui.contoso.example/cb"
	if out := admin.ok("identity", "sp", "redirect-uri", "add", "--app-id", sp.AppID, "--uri", uri); out != "Registered "+uri+" on application "+sp.AppID+"\n" {
		t.Fatalf("add printed %q", out)
	}
	admin.fails(1, "already registered", "identity", "sp", "redirect-uri", "add", "--app-id", sp.AppID, "--uri", uri)
	if out := admin.ok("identity", "sp", "redirect-uri", "list", "--app-id", sp.AppID); out != uri+"\n" {
		t.Fatalf("list printed %q", out)
	}
	admin.ok("identity", "sp", "redirect-uri", "remove", "--app-id", sp.AppID, "--uri", uri)
	admin.fails(1, "not registered", "identity", "sp", "redirect-uri", "remove", "--app-id", sp.AppID, "--uri", uri)
	admin.fails(1, "no application", "identity", "sp", "redirect-uri", "list", "--app-id", "not-an-app")
}
