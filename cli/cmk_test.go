package cli

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

// The http Client is what the commands get.
var _ keyhold.CMKClient = (*khttp.Client)(nil)

const (
	cliSystemID = "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/4ad5b2c1-0000-4000-8000-00000000000a"
	cliPolicyID = "/subscriptions/s-1/resourceGroups/rg-1/providers/Microsoft.PowerPlatform/enterprisePolicies/contoso-cmk"
)

func linkCmd(action string) func(*Factory, func(*EnvLinkOptions) error) *cobra.Command {
	return func(f *Factory, runF func(*EnvLinkOptions) error) *cobra.Command {
		return newCmdEnvLink(f, runF, action)
	}
}

func TestNewCmdEnvLink(t *testing.T) {
	tests := []struct {
		name    string
		action  string
		args    []string
		want    EnvLinkOptions
		wantErr string
	}{
		{name: "systemId", action: keyhold.OpLink, args: []string{"e1", "--policy", cliSystemID},
			want: EnvLinkOptions{Action: "link", EnvID: "e1", PolicyRef: PolicyRef{Policy: cliSystemID}, Format: FormatTable}},
		{name: "resource id, no wait, id output", action: keyhold.OpLink, args: []string{"e1", "--policy", cliPolicyID, "--no-wait", "-o", "id"},
			want: EnvLinkOptions{Action: "link", EnvID: "e1", PolicyRef: PolicyRef{Policy: cliPolicyID}, NoWait: true, Format: FormatID}},
		{name: "name with group and subscription", action: keyhold.OpLink, args: []string{"e1", "--policy", "contoso-cmk", "-g", "rg-1", "--subscription", "s-1", "--timeout", "10m"},
			want: EnvLinkOptions{Action: "link", EnvID: "e1", PolicyRef: PolicyRef{Policy: "contoso-cmk", ResourceGroup: "rg-1", Subscription: "s-1"}, Timeout: 10 * time.Minute, Format: FormatTable}},
		{name: "unlink needs no policy", action: keyhold.OpUnlink, args: []string{"e1"},
			want: EnvLinkOptions{Action: "unlink", EnvID: "e1", Format: FormatTable}},
		{name: "link needs a policy", action: keyhold.OpLink, args: []string{"e1"}, wantErr: `"keyhold link" needs --policy`},
		{name: "name without group", action: keyhold.OpLink, args: []string{"e1", "--policy", "contoso-cmk"}, wantErr: "give its resource group with -g RG"},
		{name: "group with a systemId", action: keyhold.OpUnlink, args: []string{"e1", "--policy", cliSystemID, "-g", "rg"}, wantErr: "-g is only for a policy given by name"},
		{name: "not a policy", action: keyhold.OpLink, args: []string{"e1", "--policy", "rg/contoso-cmk"}, wantErr: `--policy "rg/contoso-cmk" is not valid`},
		{name: "missing env", action: keyhold.OpLink, args: []string{"--policy", cliSystemID}, wantErr: "is missing <env>"},
		{name: "two envs", action: keyhold.OpUnlink, args: []string{"e1", "e2"}, wantErr: `got unexpected "e2"`},
		{name: "negative timeout", action: keyhold.OpLink, args: []string{"e1", "--policy", cliSystemID, "--timeout", "-1s"}, wantErr: "--timeout -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, linkCmd(tt.action), tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdOperation(t *testing.T) {
	t.Run("show", func(t *testing.T) {
		got, err := parseOpts(t, nil, newCmdOperationShow, "op-1", "-o", "json")
		if checkParse(t, err, "") {
			sameOptions(t, got, &OperationShowOptions{ID: "op-1", Format: FormatJSON})
		}
		_, err = parseOpts(t, nil, newCmdOperationShow)
		checkParse(t, err, "is missing <id>")
	})
	t.Run("wait", func(t *testing.T) {
		got, err := parseOpts(t, nil, newCmdOperationWait, "op-1", "--timeout", "90s")
		if checkParse(t, err, "") {
			sameOptions(t, got, &OperationWaitOptions{ID: "op-1", Timeout: 90 * time.Second, Format: FormatTable})
		}
		_, err = parseOpts(t, nil, newCmdOperationWait, "op-1", "op-2")
		checkParse(t, err, `got unexpected "op-2"`)
		_, err = parseOpts(t, nil, newCmdOperationWait, "op-1", "--timeout", "soon")
		checkParse(t, err, `invalid argument "soon"`)
	})
}

func TestNewCmdPolicyCMK(t *testing.T) {
	t.Run("environments", func(t *testing.T) {
		got, err := parseOpts(t, nil, newCmdPolicyEnvironments, "-o", "id")
		if checkParse(t, err, "") {
			sameOptions(t, got, &PolicyEnvironmentsOptions{Format: FormatID})
		}
		_, err = parseOpts(t, nil, newCmdPolicyEnvironments, "x")
		checkParse(t, err, `takes 0 arguments, got unexpected "x"`)
	})
	t.Run("key-versions", func(t *testing.T) {
		got, err := parseOpts(t, nil, newCmdPolicyKeyVersions, "-g", "rg-1", "-n", "contoso-cmk", "--subscription", "s-1")
		if checkParse(t, err, "") {
			sameOptions(t, got, &PolicyKeyVersionsOptions{ResourceGroup: "rg-1", Name: "contoso-cmk", Subscription: "s-1", Format: FormatTable})
		}
		_, err = parseOpts(t, nil, newCmdPolicyKeyVersions, "-n", "contoso-cmk")
		checkParse(t, err, "needs --resource-group")
		_, err = parseOpts(t, nil, newCmdPolicyKeyVersions)
		checkParse(t, err, "needs --resource-group and --name")
	})
}

// fakeCMK stands in for a server in the commands' behaviour tests. Methods
// it doesn't override panic on the nil embedded interface.
type fakeCMK struct {
	keyhold.CMKClient

	env       *keyhold.Environment
	systemIDs map[string]string // by policy resource id
	started   []string          // "link <env> <systemId>"
	startErr  error
	polls     []*keyhold.Operation // what WaitOperation reports, the last returned
	waitErr   error
	links     []*keyhold.PolicyLink
	usage     []*keyhold.KeyVersionUsage
	usageOf   string
}

func (c *fakeCMK) FindEnvironment(_ context.Context, id string) (*keyhold.Environment, error) {
	if c.env == nil || c.env.ID != id {
		return nil, keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "environment %q was not found", id)
	}
	return c.env, nil
}

func (c *fakeCMK) PolicySystemID(_ context.Context, id string) (string, error) {
	if s, ok := c.systemIDs[id]; ok {
		return s, nil
	}
	return "", keyhold.Errorf(keyhold.CodeResourceNotFound, "policy %s was not found", id)
}

func (c *fakeCMK) start(kind, envID, systemID string) (*keyhold.Operation, error) {
	c.started = append(c.started, kind+" "+envID+" "+systemID)
	if c.startErr != nil {
		return nil, c.startErr
	}
	return &keyhold.Operation{ID: "op-1", Kind: kind, Target: envID, State: keyhold.OperationRunning}, nil
}

func (c *fakeCMK) LinkPolicy(_ context.Context, envID, systemID string) (*keyhold.Operation, error) {
	return c.start(keyhold.OpLink, envID, systemID)
}

func (c *fakeCMK) UnlinkPolicy(_ context.Context, envID, systemID string) (*keyhold.Operation, error) {
	return c.start(keyhold.OpUnlink, envID, systemID)
}

func (c *fakeCMK) GetOperation(_ context.Context, id string) (*keyhold.Operation, error) {
	if len(c.polls) == 0 || c.polls[0].ID != id {
		return nil, keyhold.Errorf(keyhold.CodeNotFound, "operation %q was not found", id)
	}
	return c.polls[len(c.polls)-1], nil
}

func (c *fakeCMK) WaitOperation(_ context.Context, id string, _ time.Duration, progress func(*keyhold.Operation)) (*keyhold.Operation, error) {
	if len(c.polls) == 0 || c.polls[0].ID != id {
		return nil, keyhold.Errorf(keyhold.CodeNotFound, "operation %q was not found", id)
	}
	for _, op := range c.polls {
		progress(op)
	}
	return c.polls[len(c.polls)-1], c.waitErr
}

func (c *fakeCMK) PolicyLinks(context.Context) ([]*keyhold.PolicyLink, error) { return c.links, nil }

func (c *fakeCMK) KeyVersionUsage(_ context.Context, policyID string) ([]*keyhold.KeyVersionUsage, error) {
	c.usageOf = policyID
	return c.usage, nil
}

func (c *fakeCMK) client() func() (keyhold.CMKClient, error) {
	return func() (keyhold.CMKClient, error) { return c, nil }
}

// linkPolls is a link that runs two steps and succeeds.
func linkPolls() []*keyhold.Operation {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	op := func(state keyhold.OperationState, step string, done int64) *keyhold.Operation {
		return &keyhold.Operation{ID: "op-1", Kind: "link", Target: "e1", State: state, Step: step, Done: done, Total: 4, CreatedAt: at, UpdatedAt: at}
	}
	last := op(keyhold.OperationSucceeded, "", 4)
	last.FinishedAt = at.Add(time.Minute)
	return []*keyhold.Operation{op(keyhold.OperationRunning, "custody", 0), op(keyhold.OperationRunning, "custody", 0),
		op(keyhold.OperationRunning, "rekey", 2), last}
}

func TestEnvLinkRun(t *testing.T) {
	login := func() (string, error) { return "s-1", nil }
	newOpts := func(c *fakeCMK, action string, ref PolicyRef, format Format, noWait bool) (*EnvLinkOptions, *bytes.Buffer, *bytes.Buffer) {
		streams, out, errOut := testIO("")
		return &EnvLinkOptions{IO: streams, Ctx: context.Background(), Client: c.client(), Format: format, Action: action,
			EnvID: "e1", PolicyRef: ref, LoginSubscription: login, NoWait: noWait}, out, errOut
	}

	t.Run("no wait", func(t *testing.T) {
		for format, want := range map[Format]string{
			FormatID:    "op-1\n",
			FormatTable: "Started link operation op-1 on e1\nFollow it with: keyhold operation wait op-1\n",
			FormatJSON:  `"id": "op-1"`,
		} {
			c := &fakeCMK{}
			opts, out, _ := newOpts(c, keyhold.OpLink, PolicyRef{Policy: cliSystemID}, format, true)
			if err := envLinkRun(opts); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), want) {
				t.Errorf("-o %s printed %q, want %q", format, out, want)
			}
			if want := []string{"link e1 " + cliSystemID}; !reflect.DeepEqual(c.started, want) {
				t.Errorf("started %q, want %q", c.started, want)
			}
		}
	})

	t.Run("a name resolves in the login's subscription", func(t *testing.T) {
		c := &fakeCMK{systemIDs: map[string]string{cliPolicyID: cliSystemID}, polls: linkPolls()}
		opts, out, errOut := newOpts(c, keyhold.OpLink, PolicyRef{Policy: "contoso-cmk", ResourceGroup: "rg-1"}, FormatTable, false)
		if err := envLinkRun(opts); err != nil {
			t.Fatal(err)
		}
		if want := []string{"link e1 " + cliSystemID}; !reflect.DeepEqual(c.started, want) {
			t.Errorf("started %q, want %q", c.started, want)
		}
		// Not a terminal: a line per change, the repeated poll left out.
		want := "link op-1: Running, step custody, 0/4 (0%), 0s\n" +
			"link op-1: Running, step rekey, 2/4 (50%), 0s\n" +
			"link op-1: Succeeded, 4/4 (100%), 0s\n"
		if errOut.String() != want {
			t.Errorf("progress:\n%s\nwant:\n%s", errOut, want)
		}
		for _, w := range []string{"State:     Succeeded", "Progress:  4/4 (100%)", "Finished:  2026-01-02T03:05:05Z"} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	})

	t.Run("a resource id that is not a policy", func(t *testing.T) {
		c := &fakeCMK{}
		opts, _, _ := newOpts(c, keyhold.OpLink, PolicyRef{Policy: cliPolicyID}, FormatTable, false)
		if err := envLinkRun(opts); keyhold.ErrorCode(err) != keyhold.CodeResourceNotFound {
			t.Fatalf("err = %v, want ResourceNotFound", err)
		}
		if len(c.started) != 0 {
			t.Fatalf("started %q", c.started)
		}
	})

	t.Run("failed", func(t *testing.T) {
		polls := linkPolls()
		last := polls[len(polls)-1]
		last.State, last.ErrorCode, last.ErrorMsg = keyhold.OperationFailed, "KeyDisabled", "the key is disabled"
		c := &fakeCMK{polls: polls, waitErr: &keyhold.Error{Code: "KeyDisabled", Message: "link operation op-1 failed: the key is disabled"}}
		opts, out, _ := newOpts(c, keyhold.OpLink, PolicyRef{Policy: cliSystemID}, FormatJSON, false)
		err := envLinkRun(opts)
		if got := errorText(err); got != "KeyDisabled: link operation op-1 failed: the key is disabled" {
			t.Fatalf("error = %q", got)
		}
		if !strings.Contains(out.String(), `"state": "Failed"`) {
			t.Errorf("the failed operation was not printed: %s", out)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		polls := linkPolls()[:2]
		c := &fakeCMK{polls: polls, waitErr: context.DeadlineExceeded}
		opts, out, _ := newOpts(c, keyhold.OpLink, PolicyRef{Policy: cliSystemID}, FormatTable, false)
		opts.Timeout = time.Minute
		err := envLinkRun(opts)
		if err == nil || !strings.Contains(err.Error(), "operation op-1 is still running after 1m0s (it goes on): keyhold operation wait op-1") {
			t.Fatalf("err = %v", err)
		}
		if out.Len() != 0 {
			t.Errorf("printed %q", out)
		}
	})

	t.Run("unlink uses the linked policy", func(t *testing.T) {
		c := &fakeCMK{env: &keyhold.Environment{ID: "e1", PolicySystemID: cliSystemID}}
		opts, _, _ := newOpts(c, keyhold.OpUnlink, PolicyRef{}, FormatID, true)
		if err := envLinkRun(opts); err != nil {
			t.Fatal(err)
		}
		if want := []string{"unlink e1 " + cliSystemID}; !reflect.DeepEqual(c.started, want) {
			t.Errorf("started %q, want %q", c.started, want)
		}
	})

	t.Run("unlink of an unlinked environment", func(t *testing.T) {
		c := &fakeCMK{env: &keyhold.Environment{ID: "e1"}}
		opts, _, _ := newOpts(c, keyhold.OpUnlink, PolicyRef{}, FormatID, true)
		if err := envLinkRun(opts); err == nil || !strings.Contains(err.Error(), "not linked to an enterprise policy") {
			t.Fatalf("err = %v", err)
		}
		if len(c.started) != 0 {
			t.Fatalf("started %q", c.started)
		}
	})

	t.Run("refused", func(t *testing.T) {
		c := &fakeCMK{startErr: keyhold.Errorf(keyhold.CodeBadRequest, "environment e1 is not a Managed Environment")}
		opts, out, errOut := newOpts(c, keyhold.OpLink, PolicyRef{Policy: cliSystemID}, FormatTable, false)
		if err := envLinkRun(opts); keyhold.ErrorCode(err) != keyhold.CodeBadRequest {
			t.Fatalf("err = %v", err)
		}
		if out.Len()+errOut.Len() != 0 {
			t.Errorf("printed %q %q", out, errOut)
		}
	})
}

func TestProgressOnTerminal(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &progress{w: &buf, tty: true, start: now, now: func() time.Time { now = now.Add(1500 * time.Millisecond); return now }}
	for _, op := range linkPolls() {
		p.update(op)
	}
	p.finish()
	want := "\r\x1b[Klink op-1: Running, step custody, 0/4 (0%), 2s" +
		"\r\x1b[Klink op-1: Running, step custody, 0/4 (0%), 3s" +
		"\r\x1b[Klink op-1: Running, step rekey, 2/4 (50%), 5s" +
		"\r\x1b[Klink op-1: Succeeded, 4/4 (100%), 6s\n"
	if buf.String() != want {
		t.Fatalf("terminal display %q, want %q", buf.String(), want)
	}
	// A step named by the server can't drive the terminal.
	buf.Reset()
	p.update(&keyhold.Operation{ID: "op\x1b[2J", Kind: "link", State: keyhold.OperationRunning, Step: "x\ny"})
	if strings.Contains(buf.String()[1:], "\x1b[2J") || strings.Contains(buf.String(), "\n") {
		t.Fatalf("control characters reached the terminal: %q", buf.String())
	}
}

func TestOperationCommands(t *testing.T) {
	c := &fakeCMK{polls: linkPolls()}
	streams, out, _ := testIO("")
	if err := operationShowRun(&OperationShowOptions{IO: streams, Ctx: context.Background(), Client: c.client(), Format: FormatTable, ID: "op-1"}); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID:        op-1\n" +
		"Kind:      link\n" +
		"Target:    e1\n" +
		"State:     Succeeded\n" +
		"Step:      -\n" +
		"Progress:  4/4 (100%)\n" +
		"Created:   2026-01-02T03:04:05Z\n" +
		"Updated:   2026-01-02T03:04:05Z\n" +
		"Finished:  2026-01-02T03:05:05Z\n"
	if out.String() != want {
		t.Errorf("show:\n%s\nwant:\n%s", out, want)
	}

	streams, out, errOut := testIO("")
	err := operationWaitRun(&OperationWaitOptions{IO: streams, Ctx: context.Background(), Client: c.client(), Format: FormatID, ID: "op-1"})
	if err != nil || out.String() != "op-1\n" || !strings.Contains(errOut.String(), "Succeeded") {
		t.Fatalf("wait: %v, %q, %q", err, out, errOut)
	}

	streams, _, _ = testIO("")
	err = operationWaitRun(&OperationWaitOptions{IO: streams, Ctx: context.Background(), Client: c.client(), ID: "op-2"})
	if keyhold.ErrorCode(err) != keyhold.CodeNotFound {
		t.Fatalf("wait for an unknown operation: %v", err)
	}
}

func TestPolicyEnvironmentsRun(t *testing.T) {
	links := []*keyhold.PolicyLink{
		{
			Environment: &keyhold.Environment{ID: "e1", DisplayName: "Contoso", Location: "europe", State: keyhold.StateEnabled,
				EncryptionStatus: keyhold.EncryptionSucceeded, PolicySystemID: cliSystemID},
			Policy:        &keyhold.EnterprisePolicy{Name: "contoso-cmk", SystemID: cliSystemID},
			LastOperation: &keyhold.Operation{ID: "op-1", Kind: "link", State: keyhold.OperationSucceeded},
		},
		{Environment: &keyhold.Environment{ID: "e2", DisplayName: "Evil\x1b[2J", Location: "europe", State: keyhold.StateLocked,
			EncryptionStatus: keyhold.EncryptionFailed}},
	}
	for _, tt := range []struct {
		name   string
		links  []*keyhold.PolicyLink
		format Format
		want   string
	}{
		{name: "table", links: links, format: FormatTable, want: "" +
			"ENVIRONMENT  NAME      LOCATION  STATE                 ENCRYPTION  POLICY       LAST OPERATION\n" +
			"e1           Contoso   europe    Enabled               Succeeded   contoso-cmk  link Succeeded op-1\n" +
			"e2           Evil?[2J  europe    Environment disabled  Failed      -            -\n"},
		{name: "ids", links: links, format: FormatID, want: "e1\ne2\n"},
		{name: "flow warning", links: []*keyhold.PolicyLink{links[0], {Environment: &keyhold.Environment{ID: "e3", DisplayName: "Flows", Location: "europe", State: keyhold.StateEnabled,
			EncryptionStatus: keyhold.EncryptionSucceeded, PolicyID: "p", PlatformKeyFlows: 2}}}, format: FormatTable, want: "" +
			"ENVIRONMENT  NAME     LOCATION  STATE    ENCRYPTION  POLICY       LAST OPERATION       WARNING\n" +
			"e1           Contoso  europe    Enabled  Succeeded   contoso-cmk  link Succeeded op-1  -\n" +
			"e3           Flows    europe    Enabled  Succeeded   -            -                    " + keyhold.FlowWarningMessage + " (2 flows; keyhold flow list --env e3 --protected-by platform)\n"},
		{name: "empty table", format: FormatTable, want: "No environments with policies\n"},
		{name: "empty json is a list", format: FormatJSON, want: "[]\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			streams, out, _ := testIO("")
			c := &fakeCMK{links: tt.links}
			if err := policyEnvironmentsRun(&PolicyEnvironmentsOptions{IO: streams, Ctx: context.Background(), Client: c.client(), Format: tt.format}); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", out, tt.want)
			}
		})
	}
}

func TestPolicyKeyVersionsRun(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	c := &fakeCMK{usage: []*keyhold.KeyVersionUsage{
		{Version: "v3", Current: true, LiveKeys: 2},
		{Version: "v2", LiveKeys: 0, Backups: 1, LastUsedAt: now.Add(-time.Hour)},
		{Version: "v1b", LastUsedAt: now.Add(-time.Hour), SafeToDisableAt: now.Add(-time.Hour + keyhold.KeyVersionRetention)},
		{Version: "v1", LastUsedAt: now.Add(-30 * 24 * time.Hour), SafeToDisableAt: now.Add(-2 * 24 * time.Hour)},
		{KeyID: "byok/k1", Version: "byok/k1", Backups: 1, LastUsedAt: now.Add(-time.Hour), RetainedBYOK: &keyhold.RetainedBYOKKey{KeyID: "byok/k1",
			MigratedAt: now.Add(-time.Hour), PreMigrationBackups: 1, ShredAfter: now.Add(-time.Hour + keyhold.BYOKKeyRetention)}},
	}}
	streams, out, _ := testIO("")
	err := policyKeyVersionsRun(&PolicyKeyVersionsOptions{IO: streams, Ctx: context.Background(), Client: c.client(), Format: FormatTable,
		Now: func() time.Time { return now }, LoginSubscription: func() (string, error) { return "s-1", nil }, ResourceGroup: "rg-1", Name: "contoso-cmk"})
	if err != nil {
		t.Fatal(err)
	}
	if c.usageOf != cliPolicyID {
		t.Errorf("asked about %q, want %q", c.usageOf, cliPolicyID)
	}
	want := "" +
		"VERSION       CURRENT  LIVE EKS  BACKUPS  LAST USED             SAFE TO DISABLE\n" +
		"v3            yes      2         0        -                     no (current version)\n" +
		"v2            no       0         1        2026-02-28T23:00:00Z  no (in use)\n" +
		"v1b           no       0         0        2026-02-28T23:00:00Z  no, from 2026-03-28T23:00:00Z\n" +
		"v1            no       0         0        2026-01-30T00:00:00Z  yes\n" +
		"BYOK byok/k1  no       0         1        2026-02-28T23:00:00Z  kept until 2026-03-28T23:00:00Z\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	// -o id lists the key's versions only: a script may disable them.
	streams, out, _ = testIO("")
	if err := policyKeyVersionsRun(&PolicyKeyVersionsOptions{IO: streams, Ctx: context.Background(), Client: c.client(), Format: FormatID,
		Now: func() time.Time { return now }, LoginSubscription: func() (string, error) { return "s-1", nil }, ResourceGroup: "rg-1", Name: "contoso-cmk"}); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "v3\nv2\nv1b\nv1\n" {
		t.Errorf("-o id printed %q, want the four versions", got)
	}

	streams, _, _ = testIO("")
	err = policyKeyVersionsRun(&PolicyKeyVersionsOptions{IO: streams, Ctx: context.Background(), Client: c.client(),
		LoginSubscription: func() (string, error) { return "", errors.New("no subscription") }, ResourceGroup: "rg-1", Name: "contoso-cmk"})
	if err == nil || !strings.Contains(err.Error(), "no subscription") {
		t.Fatalf("without a subscription: %v", err)
	}
}

// TestCMKStack runs the customer-managed key commands against a real
// server: the key vault administrator's part (vault, key, policy, the
// policy identity's access) and the platform administrator's (a refused
// link, link --no-wait, operation wait, policy environments, key-versions,
// unlink).
func TestCMKStack(t *testing.T) {
	s, pol := keyVaultAdminPart(t, "cmk-kv", "contoso-cmk")

	var env keyhold.Environment
	s.okJSON(&env, "env", "create", "--name", "Contoso", "--location", "europe")
	s.fails(1, "Error: BadRequest: environment "+env.ID+" is not a Managed Environment", "env", "link", env.ID, "--policy", "contoso-cmk", "-g", "cmk")
	if out := s.ok("policy", "environments"); out != "No environments with policies\n" {
		t.Fatalf("a refused link shows in policy environments:\n%s", out)
	}
	s.ok("env", "enable-managed", env.ID)
	if out := squash(s.ok("policy", "show", "-g", "cmk", "-n", "contoso-cmk")); !strings.Contains(out, "(built-in)") ||
		!strings.Contains(out, "Last successful unwrap: never") {
		t.Fatalf("policy show before any unwrap:\n%s", out)
	}

	op := strings.TrimSpace(s.ok("env", "link", env.ID, "--policy", "contoso-cmk", "-g", "cmk", "--no-wait", "-o", "id"))
	if op == "" || strings.ContainsAny(op, " \n") {
		t.Fatalf("link --no-wait -o id printed %q", op)
	}
	if out := squash(s.ok("operation", "wait", op)); !strings.Contains(out, "State: Succeeded") || !strings.Contains(out, "Kind: link") {
		t.Fatalf("operation wait:\n%s", out)
	}
	var shown keyhold.Environment
	s.okJSON(&shown, "env", "show", env.ID)
	if shown.KeyManagedBy != keyhold.KeyManagedByCustomer || !strings.EqualFold(shown.PolicyID, pol.ID) {
		t.Fatalf("linked environment: %+v", shown)
	}
	if out := squash(s.ok("policy", "environments")); !strings.Contains(out, env.ID+" Contoso europe Enabled Succeeded contoso-cmk link Succeeded "+op) {
		t.Fatalf("policy environments:\n%s", out)
	}
	if out := squash(s.ok("policy", "key-versions", "-g", "cmk", "-n", "contoso-cmk")); !strings.Contains(out, " yes 1 0 - no (current version)") {
		t.Fatalf("policy key-versions:\n%s", out)
	}
	s.fails(1, "Error: NotFound: ", "operation", "show", "00000000-0000-0000-0000-000000000000")
	// The link unwrapped with the policy's key: policy show and the
	// coverage report say when, and name the vault.
	unwrapped := regexp.MustCompile(`Last successful unwrap: 20\d\d-\d\d-\d\dT`)
	if out := squash(s.ok("policy", "show", "-g", "cmk", "-n", "contoso-cmk")); !unwrapped.MatchString(out) {
		t.Fatalf("policy show after the link:\n%s", out)
	}
	var res keyhold.PolicyResource
	s.okJSON(&res, "policy", "show", "-g", "cmk", "-n", "contoso-cmk")
	if res.Properties.Encryption == nil || res.Properties.Encryption.KeyVault.LastSuccessfulUnwrap == nil {
		t.Fatalf("policy show -o json after the link: %+v", res.Properties.Encryption)
	}
	s.ok("row", "put", env.ID, "accounts", "a1", "--data", `{"n":1}`)
	if out := s.ok("env", "coverage", env.ID); !regexp.MustCompile(`Customer key vault https://cmk-kv\.\S+ \(built-in\): last successful unwrap 20\d\d-`).MatchString(out) {
		t.Fatalf("env coverage after the link:\n%s", out)
	}

	// Unlink from the policy the environment is linked to, waiting.
	code, stdout, stderr := s.run("", "env", "unlink", env.ID)
	if code != 0 || !strings.Contains(squash(stdout), "State: Succeeded") || !strings.Contains(stderr, "unlink ") {
		t.Fatalf("env unlink: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var unlinked keyhold.Environment
	s.okJSON(&unlinked, "env", "show", env.ID)
	if unlinked.KeyManagedBy != keyhold.KeyManagedByMicrosoft || unlinked.PolicyID != "" || unlinked.LinkStatus != "" {
		t.Fatalf("unlinked environment: %+v", unlinked)
	}
	s.fails(1, "not linked to an enterprise policy", "env", "unlink", env.ID)
}

// policyJSON is what the CLI tests read of "policy create -o json".
type policyJSON struct {
	ID       string
	Identity struct{ PrincipalID string }
}

// keyVaultAdminPart starts a server, logs a session in as its bootstrap
// administrator and does the key vault administrator's part of the spec's
// flow: resource group "cmk", the providers, an access-policy vault with
// purge protection holding key "cmk", an enterprise policy naming it, and
// the policy identity's get/wrapKey/unwrapKey on the vault.
func keyVaultAdminPart(t *testing.T, vaultName, policyName string) (*session, policyJSON) {
	t.Helper()
	bootstrap := startServer(t)
	s := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	s.ok("login", "--bootstrap", bootstrap)
	b, err := readBootstrap(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	createGroup(t, b, "cmk")
	s.ok("provider", "register", "Microsoft.KeyVault")
	s.ok("provider", "register", "Microsoft.PowerPlatform")
	var vault struct{ ID string }
	s.okJSON(&vault, "keyvault", "create", "-n", vaultName, "-g", "cmk", "-l", "westeurope", "--access-policies", "--enable-purge-protection")
	s.ok("key", "create", "--vault", vaultName, "-n", "cmk")
	var pol policyJSON
	s.okJSON(&pol, "policy", "create", "-g", "cmk", "-n", policyName, "-l", "europe", "--vault-id", vault.ID, "--key", "cmk")
	s.ok("keyvault", "set-policy", "-n", vaultName, "--object-id", pol.Identity.PrincipalID, "--key-permissions", "get,wrapKey,unwrapKey")
	return s, pol
}

// TestPrintOperationPhase: a Running operation shows its phase after its
// state; the paused one's message is still shown as its error, as before.
func TestPrintOperationPhase(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	op := &keyhold.Operation{ID: "op-1", Kind: "link", Target: "e1", State: keyhold.OperationRunning, Step: "rekey",
		Phase: keyhold.OperationPaused, PhaseReason: "environment e1 is locked", ErrorMsg: "Paused: environment e1 is locked",
		CreatedAt: at, UpdatedAt: at}
	var b strings.Builder
	if err := printOperation(&b, FormatTable, op); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID:        op-1\n" +
		"Kind:      link\n" +
		"Target:    e1\n" +
		"State:     Running\n" +
		"Phase:     Paused\n" +
		"Step:      rekey\n" +
		"Progress:  -\n" +
		"Error:     : Paused: environment e1 is locked\n" +
		"Created:   2026-01-02T03:04:05Z\n" +
		"Updated:   2026-01-02T03:04:05Z\n" +
		"Finished:  -\n"
	if b.String() != want {
		t.Errorf("show:\n%s\nwant:\n%s", b.String(), want)
	}
}
