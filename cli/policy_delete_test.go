package cli

import (
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestPolicyDeleteLinkedStack: against a real server, "policy delete" of a
// policy that an environment is linked to warns first, naming how many
// environments will lock, and without --yes refuses (exit 2) and changes
// nothing; with --yes the key vault administrator's delete goes through
// and locks the environment, whose data is then refused.
func TestPolicyDeleteLinkedStack(t *testing.T) {
	s, _ := keyVaultAdminPart(t, "del-kv", "contoso-cmk")
	var env keyhold.Environment
	s.okJSON(&env, "env", "create", "--name", "Contoso", "--location", "europe")
	s.ok("env", "enable-managed", env.ID)
	s.ok("env", "link", env.ID, "--policy", "contoso-cmk", "-g", "cmk")
	s.ok("row", "put", env.ID, "accounts", "acc-1", "--data", `{"name":"Fabrikam"}`)

	code, stdout, stderr := s.run("", "policy", "delete", "-g", "cmk", "-n", "contoso-cmk")
	for _, want := range []string{"Warning: deleting enterprise policy contoso-cmk locks the 1 environment linked to it",
		`deleting enterprise policy "contoso-cmk" deletes its managed identity for good and locks 1 environment: pass --yes to confirm`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("policy delete without --yes: stderr lacks %q:\n%s", want, stderr)
		}
	}
	if code != 2 || stdout != "" {
		t.Fatalf("policy delete without --yes: exit %d, stdout %q; want exit 2 and nothing", code, stdout)
	}
	var shown keyhold.Environment
	s.okJSON(&shown, "env", "show", env.ID)
	if shown.State != keyhold.StateEnabled || shown.LinkStatus != "Linked" {
		t.Fatalf("environment after the refused delete: %s, %q; want Enabled and Linked", shown.State, shown.LinkStatus)
	}
	s.ok("policy", "show", "-g", "cmk", "-n", "contoso-cmk")
	if out := s.ok("row", "get", env.ID, "accounts", "acc-1"); !strings.Contains(out, "Fabrikam") {
		t.Fatalf("row get after the refused delete printed %q", out)
	}

	code, stdout, stderr = s.run("", "policy", "delete", "-g", "cmk", "-n", "contoso-cmk", "--yes")
	if code != 0 || stdout != "Deleted enterprise policy contoso-cmk\n" || !strings.Contains(stderr, "locks the 1 environment linked to it") {
		t.Fatalf("policy delete --yes: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	s.okJSON(&shown, "env", "show", env.ID)
	if shown.State != keyhold.StateLocked {
		t.Fatalf("environment after the policy's deletion: %s, want Locked", shown.State)
	}
	s.fails(1, "Error: EnvironmentLocked: ", "row", "get", env.ID, "accounts", "acc-1")
	s.fails(1, "Error: ResourceNotFound: ", "policy", "delete", "-g", "cmk", "-n", "contoso-cmk", "--yes")
}
