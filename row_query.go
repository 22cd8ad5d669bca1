package keyhold

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Page sizes of DataService.ListRows: a page holds at most Top rows
// (default DefaultRowPage, at most MaxRowPage), and reads at most
// MaxRowScan rows to find them, so a filter that matches little answers
// a short page with a skip token rather than reading the whole table.
const (
	DefaultRowPage = 100
	MaxRowPage     = 1000
	MaxRowScan     = 5000
)

// RowQuery selects a page of a table's rows.
type RowQuery struct {
	// Top is the most rows the page holds (0: DefaultRowPage).
	Top int
	// Filter, if set, keeps only the rows it matches: OData's simple
	// equality, "field eq 'text'" (or a number, true, false, null),
	// several joined by "and".
	Filter string
	// SkipToken starts the page after the previous one: its RowPage's
	// SkipToken.
	SkipToken string
}

// RowPage is a page of rows; SkipToken, if not "", fetches the next one
// (it may be empty when the last page ended exactly at the table's end).
type RowPage struct {
	Rows      []*Row `json:"value"`
	SkipToken string `json:"skipToken,omitempty"`
}

// RowMatch is a parsed row filter: every field must equal its value.
type RowMatch []RowEquals

// RowEquals is one "field eq value" of a row filter.
type RowEquals struct {
	Field string
	Value any // string, float64, bool or nil
}

func badFilter(s, why string) *Error {
	return Errorf(CodeInvalidRequestContent, "$filter %q is not supported: %s; use field eq 'text' (or a number, true, false, null), joined by and", Clip(s), why)
}

// ParseRowFilter parses a row filter ("" matches every row): clauses
// "field eq value" joined by "and", value a quoted string (a doubled single
// quote for a quote), a number, true, false or null. Anything else is
// CodeInvalidRequestContent quoting the filter.
func ParseRowFilter(s string) (RowMatch, error) {
	var m RowMatch
	rest := strings.TrimSpace(s)
	for rest != "" {
		field, after, ok := strings.Cut(rest, " ")
		if !ok || field == "" {
			return nil, badFilter(s, "a clause needs a field, eq and a value")
		}
		for _, c := range field {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
				return nil, badFilter(s, "field "+strconv.Quote(field)+" is not a plain column name")
			}
		}
		after = strings.TrimSpace(after)
		op, after, _ := strings.Cut(after, " ")
		if op != "eq" {
			return nil, badFilter(s, "only eq compares ("+strconv.Quote(op)+")")
		}
		after = strings.TrimSpace(after)
		var v any
		var tail string
		if strings.HasPrefix(after, "'") {
			var b strings.Builder
			i := 1
			for ; i < len(after); i++ {
				if after[i] == '\'' {
					if i+1 < len(after) && after[i+1] == '\'' {
						b.WriteByte('\'')
						i++
						continue
					}
					break
				}
				b.WriteByte(after[i])
			}
			if i >= len(after) {
				return nil, badFilter(s, "a quoted value is not closed")
			}
			v, tail = b.String(), after[i+1:]
		} else {
			lit, t, _ := strings.Cut(after, " ")
			tail = t
			switch lit {
			case "true":
				v = true
			case "false":
				v = false
			case "null":
				v = nil
			default:
				f, err := strconv.ParseFloat(lit, 64)
				if err != nil {
					return nil, badFilter(s, "value "+strconv.Quote(lit)+" is not a quoted string, a number, true, false or null")
				}
				v = f
			}
		}
		m = append(m, RowEquals{Field: field, Value: v})
		tail = strings.TrimSpace(tail)
		if tail == "" {
			break
		}
		conj, next, _ := strings.Cut(tail, " ")
		if conj != "and" || strings.TrimSpace(next) == "" {
			return nil, badFilter(s, "clauses join with and only")
		}
		rest = strings.TrimSpace(next)
	}
	return m, nil
}

// Matches reports whether a row's JSON object has every field equal to
// its value (field names compare exactly; a missing field equals null).
func (m RowMatch) Matches(data json.RawMessage) bool {
	if len(m) == 0 {
		return true
	}
	var row map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	if dec.Decode(&row) != nil {
		return false
	}
	for _, e := range m {
		v := row[e.Field]
		switch want := e.Value.(type) {
		case nil:
			if v != nil {
				return false
			}
		case string:
			if got, ok := v.(string); !ok || got != want {
				return false
			}
		case float64:
			if got, ok := v.(float64); !ok || got != want {
				return false
			}
		case bool:
			if got, ok := v.(bool); !ok || got != want {
				return false
			}
		}
	}
	return true
}
