package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func TestNewCmdRowPut(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    RowPutOptions
		wantErr string
	}{
		{name: "data", args: []string{"e1", "accounts", "a1", "--data", `{"a":1}`},
			want: RowPutOptions{EnvID: "e1", Table: "accounts", ID: "a1", Data: `{"a":1}`, Format: FormatTable}},
		{name: "file", args: []string{"e1", "accounts", "a1", "--file", "doc.json"},
			want: RowPutOptions{EnvID: "e1", Table: "accounts", ID: "a1", File: "doc.json", Format: FormatTable}},
		{name: "stdin", args: []string{"e1", "accounts", "a1", "--file", "-", "-o", "json"},
			want: RowPutOptions{EnvID: "e1", Table: "accounts", ID: "a1", File: "-", Format: FormatJSON}},
		{name: "no document", args: []string{"e1", "accounts", "a1"}, wantErr: "give the document with --data JSON, --file FILE, or --file -"},
		{name: "both", args: []string{"e1", "accounts", "a1", "--data", "{}", "--file", "-"}, wantErr: "not both"},
		{name: "empty file name", args: []string{"e1", "accounts", "a1", "--file", ""}, wantErr: "--file needs a file name"},
		{name: "missing id", args: []string{"e1", "accounts", "--data", "{}"}, wantErr: "is missing <id>"},
		{name: "missing all", args: []string{"--data", "{}"}, wantErr: "is missing <env> <table> <id>"},
		{name: "data flag needs a value", args: []string{"e1", "accounts", "a1", "--data"}, wantErr: "flag needs an argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdRowPut, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdRowGet(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    RowGetOptions
		wantErr string
	}{
		{name: "ids", args: []string{"e1", "accounts", "a1"}, want: RowGetOptions{EnvID: "e1", Table: "accounts", ID: "a1", Format: FormatTable, Document: true}},
		{name: "explicit table", args: []string{"e1", "accounts", "a1", "-o", "table"}, want: RowGetOptions{EnvID: "e1", Table: "accounts", ID: "a1", Format: FormatTable}},
		{name: "id", args: []string{"e1", "accounts", "a1", "-o", "id"}, want: RowGetOptions{EnvID: "e1", Table: "accounts", ID: "a1", Format: FormatID}},
		{name: "too many", args: []string{"e1", "accounts", "a1", "a2"}, wantErr: `got unexpected "a2"`},
		{name: "too few", args: []string{"e1"}, wantErr: "is missing <table> <id>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdRowGet, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdRowDelete(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    RowDeleteOptions
		wantErr string
	}{
		{name: "ids", args: []string{"e1", "accounts", "a1"}, want: RowDeleteOptions{EnvID: "e1", Table: "accounts", ID: "a1"}},
		{name: "too few", args: []string{"e1", "accounts"}, wantErr: "is missing <id>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdRowDelete, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestReadDocument(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fits := `"` + strings.Repeat("x", keyhold.MaxRowBytes-2) + `"`
	tests := []struct {
		name     string
		opts     RowPutOptions
		stdin    string
		want     string
		wantCode string
	}{
		{name: "data", opts: RowPutOptions{Data: ` {"a":1} `}, want: `{"a":1}`},
		{name: "file", opts: RowPutOptions{File: write("doc.json", "{\"b\":2}\n")}, want: `{"b":2}`},
		{name: "stdin", opts: RowPutOptions{File: "-"}, stdin: `[1,2]`, want: `[1,2]`},
		{name: "not json", opts: RowPutOptions{Data: `{a:1}`}, wantCode: keyhold.CodeInvalidRequestContent},
		{name: "empty", opts: RowPutOptions{Data: ``}, wantCode: keyhold.CodeInvalidRequestContent},
		{name: "exactly the limit", opts: RowPutOptions{File: write("fits.json", fits)}, want: fits},
		{name: "one byte over", opts: RowPutOptions{File: write("big.json", fits+" ")}, wantCode: keyhold.CodeRequestTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			streams, _, _ := testIO(tt.stdin)
			tt.opts.IO = streams
			got, err := readDocument(&tt.opts)
			if tt.wantCode != "" {
				if code := keyhold.ErrorCode(err); code != tt.wantCode {
					t.Fatalf("error %v has code %q, want %q", err, code, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("document = %.40q, want %.40q", got, tt.want)
			}
		})
	}
}

func TestReadDocumentMissingFile(t *testing.T) {
	streams, _, _ := testIO("")
	_, err := readDocument(&RowPutOptions{IO: streams, File: filepath.Join(t.TempDir(), "nope.json")})
	if err == nil || !strings.Contains(err.Error(), "nope.json") {
		t.Fatalf("error = %v, want one naming the file", err)
	}
}

// TestRowGetFormats: row get prints the document by default, and with an
// explicit -o table, -o id or -o json what the other commands print in
// those modes: a table, the id alone, the object.
func TestRowGetFormats(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	c := &fakeClient{getRow: func(envID, table, id string) (*keyhold.Row, error) {
		return &keyhold.Row{EnvID: envID, Table: table, ID: id, Data: json.RawMessage(`{"name":"Fabrikam"}`), Version: 3, UpdatedAt: at}, nil
	}}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "default: the document", want: "{\n  \"name\": \"Fabrikam\"\n}\n"},
		{name: "table", args: []string{"-o", "table"}, want: "TABLE     ID  VERSION  UPDATED               BYTES\naccounts  a1  3        2026-12-05T10:00:00Z  19\n"},
		{name: "id", args: []string{"-o", "id"}, want: "a1\n"},
		{name: "json", args: []string{"-o", "json"}, want: `"version": 3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			streams, out, errOut := testIO("")
			f := NewFactory(streams, testEnv{}.get)
			code := c.runRow(f, newCmdRowGet(f, func(o *RowGetOptions) error { o.Client = c.services(); return rowGetRun(o) }),
				append([]string{"row", "get", "e1", "accounts", "a1"}, tt.args...))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if got := out.String(); got != tt.want && !(tt.name == "json" && strings.Contains(got, tt.want)) {
				t.Fatalf("output %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRowPutID: row put -o id prints only the row's id, for scripts.
func TestRowPutID(t *testing.T) {
	c := &fakeClient{putRow: func(envID, table, id string, data json.RawMessage) (*keyhold.Row, error) {
		return &keyhold.Row{EnvID: envID, Table: table, ID: id, Data: data, Version: 1}, nil
	}}
	streams, out, errOut := testIO("")
	f := NewFactory(streams, testEnv{}.get)
	cmd := newCmdRowPut(f, func(o *RowPutOptions) error { o.Client = c.services(); return rowPutRun(o) })
	if code := c.runRow(f, cmd, []string{"row", "put", "e1", "accounts", "a1", "--data", "{}", "-o", "id"}); code != 0 || out.String() != "a1\n" {
		t.Fatalf("row put -o id: exit %d, %q (stderr %q); want a1", code, out, errOut)
	}
}
