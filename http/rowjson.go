package http

import (
	"encoding/json"
	nethttp "net/http"
	"strconv"
	"time"

	"github.com/keyhold/keyhold"
)

// writeRow answers a row, as writeJSON would, without encoding/json's
// reflection and its second pass over the row's data: the data is the
// stored JSON (checked when it was put and authenticated when it was
// opened), and when it is already in the form json.Marshal would give it
// (compact, nothing HTML-escaped), it is copied as is. Anything else
// (whitespace between tokens, <, > or &, U+2028 or U+2029, a name with
// characters JSON escapes, a time not in UTC) takes json.Marshal, so the
// bytes are always exactly writeJSON's (TestRowJSONAsMarshal). At 16
// clients over HTTPS, the marshalling was 4 % of a GET's CPU
// (docs/benchmarks.md, issue 12).
func writeRow(w nethttp.ResponseWriter, status int, row *keyhold.Row) {
	b, ok := appendRow(make([]byte, 0, len(row.Data)+len(row.EnvID)+len(row.Table)+len(row.ID)+128), row)
	if !ok {
		writeJSON(w, status, row)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// appendRow appends the JSON of row as json.Marshal gives it, or reports
// false when it can't say so without encoding/json.
func appendRow(b []byte, row *keyhold.Row) ([]byte, bool) {
	if !plainString(row.EnvID) || !plainString(row.Table) || !plainString(row.ID) ||
		!compactJSON(row.Data) || row.UpdatedAt.Location() != time.UTC ||
		row.UpdatedAt.Year() < 0 || row.UpdatedAt.Year() > 9999 {
		return b, false
	}
	b = append(b, `{"environmentId":"`...)
	b = append(b, row.EnvID...)
	b = append(b, `","table":"`...)
	b = append(b, row.Table...)
	b = append(b, `","id":"`...)
	b = append(b, row.ID...)
	b = append(b, `","data":`...)
	b = append(b, row.Data...)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, row.Version, 10)
	b = append(b, `,"updatedAt":"`...)
	b = row.UpdatedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `"}`...)
	return b, true
}

// plainString says whether json.Marshal writes s as is between quotes:
// printable ASCII without ", \ or the characters it escapes for HTML.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// compactJSON says whether json.Marshal of data as a json.RawMessage is
// data itself: not empty, no whitespace outside strings, and none of what
// it escapes for HTML (<, >, &, U+2028, U+2029). data must be valid JSON,
// as a stored row is; anything this scan is unsure of is false.
func compactJSON(data json.RawMessage) bool {
	if len(data) == 0 {
		return false
	}
	in := false // inside a string
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '<', '>', '&':
			return false
		case 0xE2:
			if i+2 < len(data) && data[i+1] == 0x80 && data[i+2]&^1 == 0xA8 {
				return false
			}
		case '"':
			in = !in
		case '\\':
			if !in {
				return false
			}
			i++ // the escaped character, which may be a quote
		case ' ', '\t', '\n', '\r':
			if !in {
				return false
			}
		}
	}
	return !in
}
