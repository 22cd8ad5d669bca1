package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func TestNewCmdEnvCreate(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    EnvCreateOptions
		wantErr string
	}{
		{name: "sku defaults to Production", args: []string{"--name", "Contoso", "--location", "europe"},
			want: EnvCreateOptions{Name: "Contoso", Location: "europe", SKU: "Production", Format: FormatTable}},
		{name: "sku and json output", args: []string{"--name", "T", "--location", "uk", "--sku", "Sandbox", "-o", "json"},
			want: EnvCreateOptions{Name: "T", Location: "uk", SKU: "Sandbox", Format: FormatJSON}},
		{name: "long output flag", args: []string{"--output=json", "--name", "T", "--location", "uk"},
			want: EnvCreateOptions{Name: "T", Location: "uk", SKU: "Production", Format: FormatJSON}},
		{name: "finance and operations with integration", args: []string{"--name", "F", "--location", "uk", "--finance-and-operations", "--power-platform-integration"},
			want: EnvCreateOptions{Name: "F", Location: "uk", SKU: "Production", Format: FormatTable, FinOps: true, Integration: true}},
		{name: "missing name", args: []string{"--location", "uk"}, wantErr: "needs --name"},
		{name: "missing both", args: nil, wantErr: "needs --name and --location"},
		{name: "positional argument", args: []string{"Contoso", "--location", "uk"}, wantErr: `got unexpected "Contoso"`},
		{name: "bad output format", args: []string{"--name", "T", "--location", "uk", "-o", "yaml"}, wantErr: `invalid argument "yaml" for "-o, --output" flag: use table, json or id`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdEnvCreate, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdEnvList(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    EnvListOptions
		wantErr string
	}{
		{name: "table by default", want: EnvListOptions{Format: FormatTable}},
		{name: "json", args: []string{"-o", "json"}, want: EnvListOptions{Format: FormatJSON}},
		{name: "no arguments", args: []string{"e1"}, wantErr: `takes 0 arguments, got unexpected "e1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdEnvList, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdEnvShow(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    EnvShowOptions
		wantErr string
	}{
		{name: "id", args: []string{"e1"}, want: EnvShowOptions{ID: "e1", Format: FormatTable}},
		{name: "missing id", wantErr: "is missing <id>"},
		{name: "two ids", args: []string{"e1", "e2"}, wantErr: `got unexpected "e2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdEnvShow, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdEnvDelete(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    EnvDeleteOptions
		wantErr string
	}{
		{name: "yes", args: []string{"e1", "--yes"}, want: EnvDeleteOptions{ID: "e1", Confirmed: true}},
		{name: "short yes", args: []string{"-y", "e1"}, want: EnvDeleteOptions{ID: "e1", Confirmed: true}},
		{name: "without yes", args: []string{"e1"}, wantErr: `deleting environment "e1" destroys its keys and all its data: pass --yes to confirm`},
		{name: "missing id", args: []string{"--yes"}, wantErr: "is missing <id>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdEnvDelete, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdEnvEnableManaged(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    EnvEnableManagedOptions
		wantErr string
	}{
		{name: "id", args: []string{"e1", "-o", "json"}, want: EnvEnableManagedOptions{ID: "e1", Format: FormatJSON}},
		{name: "missing id", wantErr: "is missing <id>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdEnvEnableManaged, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdEnvUpdate(t *testing.T) {
	on, off := true, false
	tests := []struct {
		name    string
		args    []string
		want    EnvUpdateOptions
		wantErr string
	}{
		{name: "on", args: []string{"e1", "--create-flows-in-solutions"}, want: EnvUpdateOptions{ID: "e1", FlowsInSolutions: &on, Format: FormatTable}},
		{name: "off", args: []string{"e1", "--create-flows-in-solutions=false", "-o", "json"}, want: EnvUpdateOptions{ID: "e1", FlowsInSolutions: &off, Format: FormatJSON}},
		{name: "nothing to change", args: []string{"e1"}, wantErr: "--create-flows-in-solutions"},
		{name: "missing id", wantErr: "is missing <id>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdEnvUpdate, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestEnvListRun(t *testing.T) {
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	envs := []*keyhold.Environment{
		{ID: "00000000-0000-0000-0000-000000000001", DisplayName: "Contoso", Location: "europe", SKU: keyhold.SKUProduction,
			Managed: true, State: keyhold.StateEnabled, KeyManagedBy: keyhold.KeyManagedByCustomer, CreatedAt: created},
		// A display name with an escape sequence must not reach the terminal.
		{ID: "e2", DisplayName: "Evil\x1b[2J\tName", Location: "uk", SKU: keyhold.SKUSandbox,
			State: keyhold.StateLocked, KeyManagedBy: keyhold.KeyManagedByMicrosoft},
	}
	tests := []struct {
		name   string
		envs   []*keyhold.Environment
		format Format
		want   string
	}{
		{name: "table", envs: envs, format: FormatTable, want: "" +
			"ID                                    NAME           LOCATION  SKU         MANAGED  STATE    KEY MANAGED BY\n" +
			"00000000-0000-0000-0000-000000000001  Contoso        europe    Production  yes      Enabled  Customer\n" +
			"e2                                    Evil?[2J?Name  uk        Sandbox     no       Locked   Microsoft\n"},
		{name: "empty table", envs: nil, format: FormatTable, want: "No environments\n"},
		{name: "empty json is a list", envs: nil, format: FormatJSON, want: "[]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			streams, out, _ := testIO("")
			c := &fakeClient{envs: tt.envs}
			opts := &EnvListOptions{IO: streams, Ctx: context.Background(), Client: c.services(), Format: tt.format}
			if err := envListRun(opts); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestEnvListRunJSON(t *testing.T) {
	streams, out, _ := testIO("")
	c := &fakeClient{envs: []*keyhold.Environment{{ID: "e1", DisplayName: "Contoso"}}}
	opts := &EnvListOptions{IO: streams, Ctx: context.Background(), Client: c.services(), Format: FormatJSON}
	if err := envListRun(opts); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[\n  {\n    \"id\": \"e1\",", `"displayName": "Contoso"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %s does not contain %q", out, want)
		}
	}
}

func TestPrintEnvironmentID(t *testing.T) {
	var out bytes.Buffer
	if err := printEnvironment(&out, FormatID, &keyhold.Environment{ID: "e1", DisplayName: "one"}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "e1\n" {
		t.Fatalf("-o id printed %q, want the id alone", out.String())
	}
}

// TestPrintEnvironmentRestoring: an environment being restored says so,
// naming the operation; one that is not, doesn't.
func TestPrintEnvironmentRestoring(t *testing.T) {
	for _, op := range []string{"op-7", ""} {
		var out bytes.Buffer
		if err := printEnvironment(&out, FormatTable, &keyhold.Environment{ID: "e1", DisplayName: "one", RestoreOperationID: op}); err != nil {
			t.Fatal(err)
		}
		if got := squash(out.String()); strings.Contains(got, "Restoring: operation op-7 (writes refused until it ends)") != (op != "") {
			t.Errorf("restore operation %q: printed %q", op, got)
		}
	}
}
