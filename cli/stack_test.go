package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// startServer runs a real server in-process on a free port with a fresh
// data directory, stops it when the test ends, and returns the path of its
// bootstrap file.
func startServer(t *testing.T) string {
	t.Helper()
	return startServerOn(t, "")
}

// session runs commands as one user with their own KEYHOLD_HOME.
type session struct {
	t   *testing.T
	env testEnv
}

// run runs a command line and returns its exit code and outputs.
func (s *session) run(stdin string, args ...string) (code int, stdout, stderr string) {
	s.t.Helper()
	return runCLI(s.t, s.env, stdin, args...)
}

// ok runs a command line that must succeed and returns its stdout.
func (s *session) ok(args ...string) string {
	s.t.Helper()
	code, stdout, stderr := s.run("", args...)
	if code != 0 {
		s.t.Fatalf("keyhold %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

// fails runs a command line that must exit with code and print wantStderr.
func (s *session) fails(code int, wantStderr string, args ...string) {
	s.t.Helper()
	got, stdout, stderr := s.run("", args...)
	if got != code || !strings.Contains(stderr, wantStderr) {
		s.t.Fatalf("keyhold %s: exit %d, stderr %q; want exit %d and %q (stdout %q)", strings.Join(args, " "), got, stderr, code, wantStderr, stdout)
	}
}

// okJSON runs a command line with -o json and decodes its output into v.
func (s *session) okJSON(v any, args ...string) {
	s.t.Helper()
	out := s.ok(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		s.t.Fatalf("keyhold %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestStack runs the commands against a real server in one process: the
// http Client over HTTPS, the platform, storage and cryptography.
func TestStack(t *testing.T) {
	bootstrap := startServer(t)
	home := t.TempDir()
	s := &session{t: t, env: testEnv{"KEYHOLD_HOME": home}}

	t.Run("not logged in", func(t *testing.T) {
		s.fails(1, "not logged in", "env", "list")
	})
	t.Run("login", func(t *testing.T) {
		s.fails(1, "Error: invalid_client", "login", "--bootstrap", bootstrap, "--client-secret", "wrong")
		if out := s.ok("login", "--bootstrap", bootstrap); !strings.HasPrefix(out, "Logged in to https://") {
			t.Fatalf("login output %q", out)
		}
		l, err := loadLogin(home)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(l.CAPEM, "BEGIN CERTIFICATE") {
			t.Errorf("saved login holds no CA certificate: %q", l.CAPEM)
		}
		assertMode(t, filepath.Join(home, loginFile), 0o600)
		// A failed login keeps the good one.
		s.fails(1, "invalid_client", "login", "--bootstrap", bootstrap, "--client-secret", "wrong")
		if l2, err := loadLogin(home); err != nil || *l2 != *l {
			t.Errorf("a failed login changed the saved one: %+v, %v", l2, err)
		}
	})

	var env keyhold.Environment
	t.Run("env", func(t *testing.T) {
		s.okJSON(&env, "env", "create", "--name", "Contoso", "--location", "europe", "--sku", "Sandbox")
		if env.ID == "" || env.DisplayName != "Contoso" || env.SKU != keyhold.SKUSandbox || env.KeyManagedBy != keyhold.KeyManagedByMicrosoft {
			t.Fatalf("created %+v", env)
		}
		s.fails(1, "InvalidEnvironmentSku", "env", "create", "--name", "X", "--location", "europe", "--sku", "Gold")

		var list []*keyhold.Environment
		s.okJSON(&list, "env", "list")
		if len(list) == 0 || !containsEnv(list, env.ID) {
			t.Fatalf("list %v lacks %s", list, env.ID)
		}
		if out := s.ok("env", "list"); !strings.Contains(out, "KEY MANAGED BY") || !strings.Contains(out, env.ID) {
			t.Errorf("table:\n%s", out)
		}

		var managed keyhold.Environment
		s.okJSON(&managed, "env", "enable-managed", env.ID)
		if !managed.Managed || managed.ID != env.ID {
			t.Errorf("enable-managed returned %+v", managed)
		}
		var shown keyhold.Environment
		s.okJSON(&shown, "env", "show", env.ID)
		if !shown.Managed {
			t.Errorf("show after enable-managed: %+v", shown)
		}
		s.fails(1, "Error: EnvironmentNotFound: ", "env", "show", "00000000-0000-0000-0000-000000000000")

		// "Create new flows in solutions": off on the platform key, turned
		// on and off again by env update.
		if shown.FlowsInSolutions() {
			t.Errorf("flows in solutions on before any link: %+v", shown)
		}
		var upd keyhold.Environment
		s.okJSON(&upd, "env", "update", env.ID, "--create-flows-in-solutions=true")
		if !upd.FlowsInSolutions() {
			t.Errorf("env update on: %+v", upd)
		}
		if out := s.ok("env", "show", env.ID); !strings.Contains(out, "created in solution "+keyhold.DefaultSolutionID) {
			t.Errorf("env show with flows in solutions:\n%s", out)
		}
		var off keyhold.Environment
		s.okJSON(&off, "env", "update", env.ID, "--create-flows-in-solutions=false")
		if off.FlowsInSolutions() {
			t.Errorf("env update off: %+v", off)
		}
		s.fails(2, "--create-flows-in-solutions", "env", "update", env.ID)

		// Finance and operations: set at creation, integration turned
		// on later; integration alone is refused before any request.
		var fo keyhold.Environment
		s.okJSON(&fo, "env", "create", "--name", "Finance", "--location", "europe", "--finance-and-operations")
		if !fo.FinOps || fo.PowerPlatformIntegration {
			t.Errorf("created %+v, want finance and operations without integration", fo)
		}
		if out := s.ok("env", "show", fo.ID); !strings.Contains(out, "Power Platform integration off") {
			t.Errorf("env show:\n%s", out)
		}
		s.okJSON(&fo, "env", "enable-power-platform-integration", fo.ID)
		if !fo.FinOps || !fo.PowerPlatformIntegration {
			t.Errorf("after enable-power-platform-integration: %+v", fo)
		}
		s.fails(1, "finance and operations", "env", "create", "--name", "X", "--location", "europe", "--power-platform-integration")
		s.fails(1, "no finance and operations apps", "env", "enable-power-platform-integration", env.ID)
	})

	t.Run("tenant licence", func(t *testing.T) {
		if out := s.ok("tenant", "licence", "list"); !strings.Contains(out, keyhold.BootstrapLicence) || !strings.Contains(out, "microsoft-365-e5") {
			t.Errorf("licence list:\n%s", out)
		}
		if out := s.ok("tenant", "licence", "add", "office 365 g5", "-o", "id"); out != "office-365-g5\n" {
			t.Errorf("licence add -o id printed %q", out)
		}
		s.fails(1, "already holds", "tenant", "licence", "add", "Office 365 G5")
		s.fails(1, `licence "Power Apps Premium" is not one`, "tenant", "licence", "add", "Power Apps Premium")
		var ls []*keyhold.Licence
		s.okJSON(&ls, "tenant", "licence", "list")
		if len(ls) != 2 || ls[0].Name != keyhold.BootstrapLicence || ls[1].Name != "Office 365 G5" {
			t.Errorf("licences %+v", ls)
		}
		if out := s.ok("tenant", "license", "remove", "office-365-g5"); !strings.Contains(out, "Removed licence Office 365 G5") {
			t.Errorf("licence remove printed %q", out)
		}
		s.fails(1, "holds no licence", "tenant", "licence", "remove", "Office 365 G5")
	})

	t.Run("row", func(t *testing.T) {
		var r keyhold.Row
		s.okJSON(&r, "row", "put", env.ID, "accounts", "a1", "--data", `{"name":"Fabrikam"}`)
		if r.Version != 1 {
			t.Errorf("put returned %+v", r)
		}
		code, stdout, stderr := s.run(`{"name":"Northwind"}`, "row", "put", env.ID, "accounts", "a1", "--file", "-")
		if code != 0 || !strings.Contains(stdout, "(version 2)") {
			t.Fatalf("put from stdin: exit %d, %q, %q", code, stdout, stderr)
		}
		if got := s.ok("row", "get", env.ID, "accounts", "a1"); got != "{\n  \"name\": \"Northwind\"\n}\n" {
			t.Errorf("get printed %q", got)
		}
		s.fails(1, "InvalidResourceName", "row", "put", env.ID, "bad table", "a1", "--data", "{}")
		s.ok("row", "delete", env.ID, "accounts", "a1")
		s.fails(1, "Error: RowNotFound: ", "row", "get", env.ID, "accounts", "a1")
	})

	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "src.bin")
		content := pseudoRandom(1<<20 + 1)
		if err := os.WriteFile(src, content, 0o644); err != nil {
			t.Fatal(err)
		}
		var info keyhold.FileInfo
		s.okJSON(&info, "file", "put", env.ID, "big.bin", src)
		if info.Size != int64(len(content)) {
			t.Errorf("put returned %+v", info)
		}
		dst := filepath.Join(dir, "dst.bin")
		s.ok("file", "get", env.ID, "big.bin", "--out", dst)
		if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, content) {
			t.Fatalf("downloaded %d bytes (%v), want the %d uploaded", len(got), err, len(content))
		}
		if got := s.ok("file", "get", env.ID, "big.bin", "--out", "-"); got != string(content) {
			t.Errorf("stdout got %d bytes, want %d", len(got), len(content))
		}
		s.fails(1, "Error: FileNotFound: ", "file", "get", env.ID, "nope.bin", "--out", filepath.Join(dir, "nope.bin"))
		if _, err := os.Stat(filepath.Join(dir, "nope.bin")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a failed download left a file: %v", err)
		}
	})

	t.Run("audit", func(t *testing.T) {
		var entries []*keyhold.AuditEntry
		s.okJSON(&entries, "audit", "list", "--env", env.ID, "--top", "2")
		if len(entries) == 0 || len(entries) > 2 {
			t.Fatalf("got %d entries, want 1 or 2", len(entries))
		}
		for _, e := range entries {
			if e.EnvID != env.ID {
				t.Errorf("--env %s listed %+v", env.ID, e)
			}
		}
	})

	t.Run("delete and logout", func(t *testing.T) {
		s.fails(2, "pass --yes to confirm", "env", "delete", env.ID)
		s.ok("env", "delete", env.ID, "--yes")
		s.fails(1, "EnvironmentNotFound", "env", "show", env.ID)
		if out := s.ok("logout"); out != "Logged out\n" {
			t.Errorf("logout printed %q", out)
		}
		s.fails(1, "not logged in", "env", "list")
	})
}

func containsEnv(list []*keyhold.Environment, id string) bool {
	for _, e := range list {
		if e.ID == id {
			return true
		}
	}
	return false
}
