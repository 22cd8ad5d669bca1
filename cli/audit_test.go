package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func TestNewCmdAuditList(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    AuditListOptions
		wantErr string
	}{
		{name: "defaults", want: AuditListOptions{Top: 50, Format: FormatTable}},
		{name: "env and top", args: []string{"--env", "e1", "--top", "5", "-o", "json"}, want: AuditListOptions{EnvID: "e1", Top: 5, Format: FormatJSON}},
		{name: "top zero", args: []string{"--top", "0"}, wantErr: "--top 0 is out of range: use 1 to 1000"},
		{name: "top too large", args: []string{"--top", "1001"}, wantErr: "out of range"},
		{name: "top not a number", args: []string{"--top", "many"}, wantErr: `invalid argument "many"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdAuditList, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestAuditListRun(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	c := &fakeClient{audit: []*keyhold.AuditEntry{
		{ID: 2, At: at, ActorID: "app1", Action: "row.put", Target: "accounts/a1", EnvID: "e1", Result: "Succeeded"},
		{ID: 1, At: at, ActorID: "app1", Action: "environment.create", Target: "e1", Result: "Succeeded"},
	}}
	streams, out, _ := testIO("")
	if err := auditListRun(&AuditListOptions{IO: streams, Ctx: context.Background(), Client: c.services(), Format: FormatTable, Top: 50}); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"TIME                  ACTOR  ACTION              TARGET       ENVIRONMENT  RESULT\n" +
		"2025-01-02T02:04:05Z  app1   row.put             accounts/a1  e1           Succeeded\n" +
		"2025-01-02T02:04:05Z  app1   environment.create  e1           -            Succeeded\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}

// TestAuditListWithheld: an entry sealed under a locked environment's key
// says so instead of an empty target.
func TestAuditListWithheld(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c := &fakeClient{audit: []*keyhold.AuditEntry{
		{ID: 1, At: at, ActorID: "app1", Action: "row.put", EnvID: "e1", Result: "Succeeded", Withheld: true},
	}}
	streams, out, _ := testIO("")
	if err := auditListRun(&AuditListOptions{IO: streams, Ctx: context.Background(), Client: c.services(), Format: FormatTable, Top: 50}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "(withheld: sealed under the environment's key)") {
		t.Errorf("output:\n%s\nwant the entry marked withheld", out)
	}
}
