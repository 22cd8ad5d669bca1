package keyhold

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestParseRowFilter parses equality clauses joined by and, and refuses
// anything else quoting the filter.
func TestParseRowFilter(t *testing.T) {
	m, err := ParseRowFilter(`status eq 'open' and n eq 3 and done eq false and owner eq null and name eq 'O''Brien'`)
	if err != nil {
		t.Fatal(err)
	}
	want := RowMatch{{"status", "open"}, {"n", 3.0}, {"done", false}, {"owner", nil}, {"name", "O'Brien"}}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("parsed %#v", m)
	}
	row := json.RawMessage(`{"status":"open","n":3,"done":false,"name":"O'Brien"}`)
	if !m.Matches(row) {
		t.Error("the row doesn't match")
	}
	if m.Matches(json.RawMessage(`{"status":"open","n":"3","done":false,"name":"O'Brien"}`)) {
		t.Error("a string matched a number")
	}
	if m, _ := ParseRowFilter(""); !m.Matches(row) {
		t.Error("an empty filter must match every row")
	}
	for _, bad := range []string{"status ne 'x'", "status eq 'open", "a/b eq 1", "status eq open", "a eq 1 or b eq 2", "a eq 1 and", "status"} {
		_, err := ParseRowFilter(bad)
		if ErrorCode(err) != CodeInvalidRequestContent || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}
