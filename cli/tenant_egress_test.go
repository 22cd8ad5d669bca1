package cli

import (
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
)

var _ keyhold.TenantEgressClient = (*khttp.Client)(nil)

func TestNewCmdTenantEgressSet(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    TenantEgressOptions
		wantErr string
	}{
		{name: "allow", args: []string{"--allow", "api.partner.example,203.0.113.0/24", "--allow", "hooks.internal"},
			want: TenantEgressOptions{Format: FormatTable, Set: true, Allow: []string{"api.partner.example", "203.0.113.0/24", "hooks.internal"}}},
		{name: "clear", args: []string{"--clear", "-o", "json"}, want: TenantEgressOptions{Format: FormatJSON, Set: true}},
		{name: "nothing", wantErr: "give either --allow"},
		{name: "both", args: []string{"--allow", "a.example", "--clear"}, wantErr: "give either --allow"},
		{name: "empty allow", args: []string{"--allow", ""}, wantErr: "--allow is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdTenantEgressSet, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

// TestTenantEgressStack sets, shows and clears the tenant's Http
// allowlist against a real server; a bad entry is refused quoting it and
// changes nothing.
func TestTenantEgressStack(t *testing.T) {
	bootstrap := startServer(t)
	s := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	s.ok("login", "--bootstrap", bootstrap)
	if out := squash(s.ok("tenant", "egress", "show")); !strings.Contains(out, "Http allowlist: none") {
		t.Errorf("default:\n%s", out)
	}
	var got keyhold.TenantEgress
	s.okJSON(&got, "tenant", "egress", "set", "--allow", "api.partner.example,203.0.113.0/24", "-o", "json")
	if strings.Join(got.Allow, ",") != "api.partner.example,203.0.113.0/24" || got.UpdatedBy == "" {
		t.Errorf("after set: %+v", got)
	}
	s.fails(1, `"bad host!"`, "tenant", "egress", "set", "--allow", "bad host!")
	if out := squash(s.ok("tenant", "egress", "show")); !strings.Contains(out, "Http allowlist: api.partner.example, 203.0.113.0/24") {
		t.Errorf("after a refused set:\n%s", out)
	}
	s.okJSON(&got, "tenant", "egress", "set", "--clear", "-o", "json")
	if len(got.Allow) != 0 {
		t.Errorf("after clear: %+v", got)
	}
}
