package http

import (
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestRowJSONAsMarshal: the row answer written without encoding/json
// (writeRow) is byte for byte what json.Marshal gives, for data and
// names that take the fast path and for every kind that must not (it
// would change the bytes); and the fast path is taken for a plain row.
func TestRowJSONAsMarshal(t *testing.T) {
	at := time.Date(2026, 12, 6, 9, 30, 1, 123456789, time.UTC)
	base := keyhold.Row{EnvID: "0c9e5b1e-2b1c-4a63-9f0e-5a8d3c1f2e7a", Table: "accounts", ID: "r-1", Data: json.RawMessage(`{"name":"Contoso","n":1.5e3,"tags":["a","b"],"o":{"k":null,"t":true}}`), Version: 42, UpdatedAt: at}
	cases := []struct {
		name string
		edit func(r *keyhold.Row)
		fast bool
	}{
		{"plain", func(r *keyhold.Row) {}, true},
		{"unicode and escapes in strings", func(r *keyhold.Row) {
			r.Data = json.RawMessage(`{"s":"é \" \\ \n \u00e9 \/ tab\tin","q":"a\"b"}`)
		}, true},
		{"whitespace between tokens", func(r *keyhold.Row) { r.Data = json.RawMessage("{ \"a\" : [1, 2]\n}") }, false},
		{"leading and trailing space", func(r *keyhold.Row) { r.Data = json.RawMessage(` {"a":1} `) }, false},
		{"HTML characters", func(r *keyhold.Row) { r.Data = json.RawMessage(`{"h":"<b>&amp;</b>"}`) }, false},
		{"U+2028", func(r *keyhold.Row) { r.Data = json.RawMessage("{\"s\":\"a\u2028b\u2029\"}") }, false},
		{"an id JSON escapes", func(r *keyhold.Row) { r.ID = `r"<1>` }, false},
		{"a non-ASCII table", func(r *keyhold.Row) { r.Table = "tablé" }, false},
		{"zero time", func(r *keyhold.Row) { r.UpdatedAt = time.Time{} }, true},
		{"whole seconds", func(r *keyhold.Row) { r.UpdatedAt = at.Truncate(time.Second) }, true},
		{"another zone", func(r *keyhold.Row) { r.UpdatedAt = at.In(time.FixedZone("x", 3600)) }, false},
		{"version 0", func(r *keyhold.Row) { r.Version = 0 }, true},
		{"nil data", func(r *keyhold.Row) { r.Data = nil }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			row := base
			tc.edit(&row)
			want, err := json.Marshal(&row)
			if err != nil {
				t.Fatal(err)
			}
			_, fast := appendRow(nil, &row)
			if fast != tc.fast {
				t.Errorf("fast path %v, want %v", fast, tc.fast)
			}
			w := httptest.NewRecorder()
			writeRow(w, 200, &row)
			if got := w.Body.String(); got != string(want) {
				t.Errorf("writeRow wrote\n%s\nwant json.Marshal's\n%s", got, want)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if cl := w.Header().Get("Content-Length"); fast && cl != strconv.Itoa(len(want)) {
				t.Errorf("Content-Length %q, want %d", cl, len(want))
			}
		})
	}
	row := base
	if n := testing.AllocsPerRun(100, func() { appendRow(make([]byte, 0, 512), &row) }); n > 1 {
		t.Errorf("appendRow allocates %v times a row, want at most 1", n)
	}
}
