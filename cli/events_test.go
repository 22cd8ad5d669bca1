package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
)

// The http Client is what the events and tenant commands get.
var _ keyhold.EventClient = (*khttp.Client)(nil)

func TestNewCmdTenantSettingsSet(t *testing.T) {
	yes, no, hook, none := true, false, "https://hooks.contoso.com/k", ""
	tests := []struct {
		name    string
		args    []string
		want    TenantSettingsOptions
		wantErr string
	}{
		{name: "auto on", args: []string{"--auto-reenable"}, want: TenantSettingsOptions{Format: FormatTable, Patch: keyhold.TenantSettingsPatch{AutoReenable: &yes}}},
		{name: "auto off", args: []string{"--auto-reenable=false"}, want: TenantSettingsOptions{Format: FormatTable, Patch: keyhold.TenantSettingsPatch{AutoReenable: &no}}},
		{name: "webhook", args: []string{"--webhook-url", hook, "-o", "json"}, want: TenantSettingsOptions{Format: FormatJSON, Patch: keyhold.TenantSettingsPatch{WebhookURL: &hook}}},
		{name: "remove webhook", args: []string{"--webhook-url", ""}, want: TenantSettingsOptions{Format: FormatTable, Patch: keyhold.TenantSettingsPatch{WebhookURL: &none}}},
		{name: "nothing", wantErr: "nothing to change"},
		{name: "bad bool", args: []string{"--auto-reenable=maybe"}, wantErr: "invalid argument"},
		{name: "argument", args: []string{"x"}, wantErr: `got unexpected "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdTenantSettingsSet, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
				if (got.Patch.AutoReenable == nil) != (tt.want.Patch.AutoReenable == nil) || (got.Patch.WebhookURL == nil) != (tt.want.Patch.WebhookURL == nil) ||
					got.Patch.AutoReenable != nil && *got.Patch.AutoReenable != *tt.want.Patch.AutoReenable ||
					got.Patch.WebhookURL != nil && *got.Patch.WebhookURL != *tt.want.Patch.WebhookURL {
					t.Errorf("patch %+v, want %+v", got.Patch, tt.want.Patch)
				}
			}
		})
	}
	if _, err := parseOpts(t, nil, newCmdEventsList, "--top", "0"); !strings.Contains(errString(err), "out of range") {
		t.Errorf("events list --top 0: %v, want out of range", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// fakeEvents answers the event commands.
type fakeEvents struct {
	events []keyhold.EventView
	s      keyhold.TenantSettings
	err    error
}

func (f *fakeEvents) ListEventViews(context.Context, int64, int) ([]keyhold.EventView, error) {
	return f.events, f.err
}
func (f *fakeEvents) TestWebhook(context.Context) (*keyhold.EventView, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &f.events[0], nil
}
func (f *fakeEvents) TenantSettings(context.Context) (*keyhold.TenantSettings, error) {
	return &f.s, f.err
}
func (f *fakeEvents) UpdateTenantSettings(_ context.Context, p keyhold.TenantSettingsPatch) (*keyhold.TenantSettings, error) {
	if f.err != nil {
		return nil, f.err
	}
	if p.AutoReenable != nil {
		f.s.AutoReenable = *p.AutoReenable
	}
	if p.WebhookURL != nil {
		f.s.WebhookURL = *p.WebhookURL
	}
	return &f.s, nil
}

func TestEventsListRun(t *testing.T) {
	at := time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)
	f := &fakeEvents{events: []keyhold.EventView{{ID: "7", Time: at, Kind: keyhold.EventEnvironmentLocked, EnvironmentID: "e1",
		Summary:  "Enabled -> Locked: the key is not accessible",
		Changes:  []keyhold.VaultChange{{At: at, ActorID: "u1", ActorName: "Mallory", Action: "roleAssignment.delete", Target: "/x/roleAssignments/r1"}},
		Delivery: &keyhold.EventDeliveryView{State: keyhold.DeliveryFailed, Attempts: 12}}}}
	streams, out, _ := testIO("")
	err := eventsListRun(&EventsListOptions{IO: streams, Ctx: context.Background(), Format: FormatTable, Top: 5, Client: func() (keyhold.EventClient, error) { return f, nil }})
	got := squash(out.String())
	for _, w := range []string{"EnvironmentLocked", "e1", "Failed", "Enabled -> Locked", "roleAssignment.delete /x/roleAssignments/r1 by Mallory (u1)"} {
		if err != nil || !strings.Contains(got, w) {
			t.Errorf("events list lacks %q (%v):\n%s", w, err, out.String())
		}
	}
	f.err = keyhold.Errorf(keyhold.CodeForbidden, "not an administrator")
	streams, out, _ = testIO("")
	if err := eventsListRun(&EventsListOptions{IO: streams, Ctx: context.Background(), Top: 5, Client: func() (keyhold.EventClient, error) { return f, nil }}); keyhold.ErrorCode(err) != keyhold.CodeForbidden || out.Len() != 0 {
		t.Errorf("refused list: %v, %q", err, out.String())
	}
}

// TestTenantSettingsStack sets and shows the tenant's settings against a
// real server, and lists its (empty) events.
func TestTenantSettingsStack(t *testing.T) {
	bootstrap := startServer(t)
	s := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	s.ok("login", "--bootstrap", bootstrap)
	if out := s.ok("tenant", "settings", "show"); !strings.Contains(squash(out), "Auto re-enable: false") || !strings.Contains(squash(out), "Event webhook: -") {
		t.Errorf("default settings:\n%s", out)
	}
	s.fails(1, "https", "tenant", "settings", "set", "--webhook-url", "ftp://hooks.contoso.com/k")
	var got struct {
		AutoReenable bool   `json:"autoReenableEnvironments"`
		WebhookURL   string `json:"eventWebhookUrl"`
	}
	s.okJSON(&got, "tenant", "settings", "set", "--webhook-url", "https://hooks.contoso.com/k", "--auto-reenable", "-o", "json")
	if !got.AutoReenable || got.WebhookURL != "https://hooks.contoso.com/k" {
		t.Errorf("after set: %+v", got)
	}
	s.okJSON(&got, "tenant", "settings", "show", "-o", "json")
	if !got.AutoReenable || got.WebhookURL != "https://hooks.contoso.com/k" {
		t.Errorf("show after set: %+v", got)
	}
	if out := s.ok("events", "list"); !strings.Contains(out, "No events") {
		t.Errorf("events list on a new tenant:\n%s", out)
	}
	// A test event for the webhook: listed, Pending.
	if out := s.ok("events", "test"); !strings.Contains(out, keyhold.EventWebhookTest) || !strings.Contains(out, "Pending") {
		t.Errorf("events test:\n%s", out)
	}
	if out := s.ok("events", "list"); !strings.Contains(out, keyhold.EventWebhookTest) {
		t.Errorf("events list after a test:\n%s", out)
	}
	// Without a webhook: refused, saying how to set one, no event.
	s.ok("tenant", "settings", "set", "--webhook-url", "")
	s.fails(1, "no webhook", "events", "test")
	if out := s.ok("events", "list", "-o", "id"); len(strings.Fields(out)) != 1 {
		t.Errorf("a refused test wrote an event:\n%s", out)
	}
}

// TestIDOutputStack: list and create commands print bare ids with -o id,
// so that scripts (the README's walkthrough) can capture them.
func TestIDOutputStack(t *testing.T) {
	bootstrap := startServer(t)
	s := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	s.ok("login", "--bootstrap", bootstrap)
	isIDs := func(what, out string, prefix string) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		for _, l := range lines {
			if l == "" || strings.ContainsAny(l, " \t") || !strings.HasPrefix(l, prefix) {
				t.Errorf("%s -o id printed %q, want bare ids starting %q:\n%s", what, l, prefix, out)
			}
		}
	}
	isIDs("group create", s.ok("group", "create", "-n", "g1", "-l", "europe", "-o", "id"), "/subscriptions/")
	isIDs("group list", s.ok("group", "list", "-o", "id"), "/subscriptions/")
	isIDs("role list", s.ok("role", "list", "-o", "id"), "")
	isIDs("audit list", s.ok("audit", "list", "--top", "3", "-o", "id"), "")
}
