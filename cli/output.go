package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// Format is an output format, the value of the global -o/--output flag. It
// implements pflag.Value, so a bad value is a usage error.
type Format string

// Output formats.
const (
	FormatTable Format = "table" // aligned columns for people
	FormatJSON  Format = "json"  // the API's objects, indented
	// FormatID prints only the ids of the resources a command shows, one a
	// line, for scripts: ENV=$(keyhold env create … -o id). Commands that
	// show no resource print their table.
	FormatID Format = "id"
)

// String returns the format's name.
func (f *Format) String() string { return string(*f) }

// Set accepts "table" or "json".
func (f *Format) Set(s string) error {
	switch Format(s) {
	case FormatTable, FormatJSON, FormatID:
		*f = Format(s)
		return nil
	}
	return errors.New("use table, json or id")
}

// Type names the flag's value in help.
func (f *Format) Type() string { return "format" }

// printIDs writes ids one a line: FormatID's output.
func printIDs(w io.Writer, ids ...string) error {
	for _, id := range ids {
		if _, err := fmt.Fprintln(w, id); err != nil {
			return err
		}
	}
	return nil
}

// printJSON writes v as indented JSON followed by a newline.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable returns a tabwriter that aligns tab-separated cells in columns.
// Flush it when done.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// row writes one line of cells to a table, made safe by cell.
func row(w io.Writer, cells ...string) {
	for i, c := range cells {
		cells[i] = cell(c)
	}
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// cell makes a server-supplied value safe to print in a table: a tab or
// newline would break the columns, and an escape sequence in a display name
// could rewrite the user's terminal.
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// yesNo renders a flag for a table.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// timestamp renders a time for a table, in UTC to the second.
func timestamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
