package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
)

// The http Client is what "env enable" gets.
var _ keyhold.EnvironmentEnabler = (*khttp.Client)(nil)

func TestNewCmdEnvEnable(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    EnvEnableOptions
		wantErr string
	}{
		{name: "env", args: []string{"e1"}, want: EnvEnableOptions{EnvID: "e1", Format: FormatTable}},
		{name: "json", args: []string{"e1", "-o", "json"}, want: EnvEnableOptions{EnvID: "e1", Format: FormatJSON}},
		{name: "missing env", wantErr: "is missing <env>"},
		{name: "two envs", args: []string{"e1", "e2"}, wantErr: `got unexpected "e2"`},
		{name: "unknown flag", args: []string{"e1", "--policy", "p"}, wantErr: "unknown flag: --policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdEnvEnable, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

// fakeEnabler answers EnableEnvironmentOp with op or err.
type fakeEnabler struct {
	op    *keyhold.Operation
	err   error
	calls []string
}

func (f *fakeEnabler) EnableEnvironmentOp(_ context.Context, envID string) (*keyhold.Operation, error) {
	f.calls = append(f.calls, envID)
	return f.op, f.err
}

func TestEnvEnableRun(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	op := &keyhold.Operation{ID: "op-1", Kind: "enable", Target: "e1", State: keyhold.OperationSucceeded, CreatedAt: at, UpdatedAt: at, FinishedAt: at}
	run := func(f *fakeEnabler, format Format) (string, error) {
		streams, out, _ := testIO("")
		err := envEnableRun(&EnvEnableOptions{IO: streams, Ctx: context.Background(), Format: format, EnvID: "e1",
			Client: func() (keyhold.EnvironmentEnabler, error) { return f, nil }})
		return out.String(), err
	}
	f := &fakeEnabler{op: op}
	out, err := run(f, FormatTable)
	if err != nil || !strings.HasPrefix(out, "Enabled environment e1\n") || !strings.Contains(squash(out), "State: Succeeded") ||
		!strings.Contains(squash(out), "Kind: enable") || len(f.calls) != 1 || f.calls[0] != "e1" {
		t.Fatalf("table: %v, %v\n%s", f.calls, err, out)
	}
	if out, err = run(&fakeEnabler{op: op}, FormatID); err != nil || out != "op-1\n" {
		t.Fatalf("id: %q, %v", out, err)
	}
	locked := keyhold.Errorf(keyhold.CodeForbidden, "environment e1 stays locked: its key could not be unwrapped")
	if out, err = run(&fakeEnabler{err: locked}, FormatTable); keyhold.ErrorCode(err) != keyhold.CodeForbidden || out != "" {
		t.Fatalf("refused: %q, %v; want the Forbidden error and no output", out, err)
	}
}

func TestPrintEnvironmentLocked(t *testing.T) {
	var out bytes.Buffer
	e := &keyhold.Environment{ID: "e1", DisplayName: "one", State: keyhold.StateLocked, KeyManagedBy: keyhold.KeyManagedByCustomer,
		PolicyID: cliPolicyID, LinkStatus: keyhold.LinkStatusLinked}
	if err := printEnvironment(&out, FormatTable, e); err != nil {
		t.Fatal(err)
	}
	got := squash(out.String())
	for _, w := range []string{"State: Locked (Environment disabled)", "Policy: " + cliPolicyID, "Link status: " + keyhold.LinkStatusLinked} {
		if !strings.Contains(got, w) {
			t.Errorf("env show lacks %q:\n%s", w, out.String())
		}
	}
	out.Reset()
	e.State, e.PolicyID, e.LinkStatus = keyhold.StateEnabled, "", ""
	if err := printEnvironment(&out, FormatTable, e); err != nil {
		t.Fatal(err)
	}
	if got := squash(out.String()); !strings.Contains(got, "State: Enabled") || strings.Contains(got, "Policy:") || strings.Contains(got, "Link status:") {
		t.Errorf("an unlinked environment:\n%s", out.String())
	}
}

// TestEnvEnableStack runs "env enable" and "env show" against a real server:
// a linked environment that is not Locked is refused (exit 1) and stays as
// it was; the table names its policy. (Locking needs a health check, which
// the HTTP tests drive.)
func TestEnvEnableStack(t *testing.T) {
	s, pol := keyVaultAdminPart(t, "lock-kv", "lock-cmk")
	var env keyhold.Environment
	s.okJSON(&env, "env", "create", "--name", "Contoso", "--location", "europe")
	s.ok("env", "enable-managed", env.ID)

	// Not linked, not Locked: refused, unchanged.
	s.fails(1, "Error: Conflict: environment "+env.ID+" is Enabled, not Locked", "env", "enable", env.ID)
	if out := squash(s.ok("env", "show", env.ID)); !strings.Contains(out, "State: Enabled") || strings.Contains(out, "Policy:") {
		t.Fatalf("env show of an unlinked environment:\n%s", out)
	}

	s.ok("env", "link", env.ID, "--policy", "lock-cmk", "-g", "cmk")
	out := squash(s.ok("env", "show", env.ID))
	if !strings.Contains(out, "State: Enabled") || !strings.Contains(strings.ToLower(out), "policy: "+strings.ToLower(pol.ID)) ||
		!strings.Contains(out, "Link status: "+keyhold.LinkStatusLinked) {
		t.Fatalf("env show of a linked environment:\n%s", out)
	}
	s.fails(1, "Error: Conflict: environment "+env.ID+" is Enabled, not Locked", "env", "enable", env.ID)
	if out2 := squash(s.ok("env", "show", env.ID)); out2 != out {
		t.Fatalf("a refused enable changed the environment:\n%s\nwas\n%s", out2, out)
	}
}
