package sqlstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// zeroNanos stands for the zero time.Time. Time columns are NOT NULL so that
// ORDER BY and range conditions behave the same on every backend (SQLite and
// PostgreSQL sort NULL at opposite ends); the zero time, being the earliest,
// takes the smallest value.
const zeroNanos = math.MinInt64

// Bounds of the times a column can hold: what int64 nanoseconds since the
// Unix epoch can represent (years 1678 to 2262), less the zero sentinel.
var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

// nanos returns t as stored: Unix nanoseconds, or zeroNanos for the zero
// time. Callers check the range with checkTimes first.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return zeroNanos
	}
	return t.UnixNano()
}

// checkTimes refuses times the store can't represent, rather than storing a
// silently wrapped value.
func checkTimes(ts ...time.Time) error {
	for _, t := range ts {
		if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
			return fmt.Errorf("sqlstore: time %s is outside the range the store holds (%s to %s)",
				t.UTC().Format(time.RFC3339), minTime.UTC().Format(time.RFC3339), maxTime.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// blob returns b, or an empty slice for nil, because drivers write a nil
// []byte as NULL and byte columns are NOT NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// nullString returns nil (NULL) for "", so that a unique index over the
// column ignores items that have no value.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// timeCol scans a time column into a time.Time in UTC.
type timeCol struct{ p *time.Time }

func (c timeCol) Scan(v any) error {
	n, ok := v.(int64)
	if !ok {
		return fmt.Errorf("sqlstore: time column holds %T, want int64", v)
	}
	if n == zeroNanos {
		*c.p = time.Time{}
	} else {
		*c.p = time.Unix(0, n).UTC()
	}
	return nil
}

// boolCol scans a boolean: BOOLEAN in PostgreSQL, INTEGER 0 or 1 in SQLite.
type boolCol struct{ p *bool }

func (c boolCol) Scan(v any) error {
	switch v := v.(type) {
	case bool:
		*c.p = v
	case int64:
		*c.p = v != 0
	default:
		return fmt.Errorf("sqlstore: boolean column holds %T", v)
	}
	return nil
}

// u32Col and u64Col scan unsigned counters stored as BIGINT.
type u32Col struct{ p *uint32 }

func (c u32Col) Scan(v any) error {
	n, ok := v.(int64)
	if !ok || n < 0 || n > math.MaxUint32 {
		return fmt.Errorf("sqlstore: uint32 column holds %T %v", v, v)
	}
	*c.p = uint32(n)
	return nil
}

type u64Col struct{ p *uint64 }

func (c u64Col) Scan(v any) error {
	n, ok := v.(int64)
	if !ok || n < 0 {
		return fmt.Errorf("sqlstore: uint64 column holds %T %v", v, v)
	}
	*c.p = uint64(n)
	return nil
}

// nullStrCol scans a nullable text column, NULL as "".
type nullStrCol struct{ p *string }

func (c nullStrCol) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*c.p = ""
	case string:
		*c.p = v
	case []byte:
		*c.p = string(v)
	default:
		return fmt.Errorf("sqlstore: text column holds %T", v)
	}
	return nil
}

// u64Arg converts a version to the signed integer the databases hold.
func u64Arg(v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, errors.New("sqlstore: version exceeds the largest storable value")
	}
	return int64(v), nil
}

// jsonArg encodes a structured field (tags, access policies, network
// rules, a rotation policy) as JSON text. nil maps, slices and pointers
// encode as "null", so they come back nil, and empty ones as empty.
func jsonArg(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("sqlstore: encode %T: %w", v, err)
	}
	return string(b), nil
}

// jsonCol scans JSON text into p.
type jsonCol struct{ p any }

func (c jsonCol) Scan(v any) error {
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("sqlstore: JSON column holds %T", v)
	}
	return json.Unmarshal(b, c.p)
}
