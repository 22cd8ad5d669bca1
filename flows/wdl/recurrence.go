package wdl

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Recurrence is a Recurrence trigger's schedule: a slot every Interval
// Frequency units from StartTime, in TimeZone (Day, Week and Month slots
// keep their wall-clock time across daylight saving changes).
type Recurrence struct {
	Frequency string    // "Second", "Minute", "Hour", "Day", "Week", "Month"
	Interval  int       // ≥ 1
	StartTime time.Time // the first slot; zero: slots are counted from 1970-01-01T00:00:00 in TimeZone
	TimeZone  string    // a Windows or IANA name from the supported list; "" is UTC
}

// maxInterval is Logic Apps' largest interval per frequency.
var maxInterval = map[string]int{"Second": 9999999, "Minute": 72000, "Hour": 12000, "Day": 500, "Week": 71, "Month": 16}

func parseRecurrence(raw json.RawMessage, path string) (*Recurrence, error) {
	o, err := object(raw, path, "frequency", "interval", "startTime", "timeZone")
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, invalid(path, "is missing: give frequency and interval")
	}
	r := &Recurrence{}
	if r.Frequency, err = str(o["frequency"], path+".frequency"); err != nil {
		return nil, err
	}
	if _, ok := maxInterval[r.Frequency]; !ok {
		return nil, invalid(path+".frequency", "%q is not one of Second, Minute, Hour, Day, Week, Month", keyhold.Clip(r.Frequency))
	}
	if err := json.Unmarshal(o["interval"], &r.Interval); err != nil || r.Interval < 1 || r.Interval > maxInterval[r.Frequency] {
		return nil, invalid(path+".interval", "must be an integer from 1 to %d for %s, not %s", maxInterval[r.Frequency], r.Frequency, keyhold.Clip(string(o["interval"])))
	}
	loc := time.UTC
	if tz, ok := o["timeZone"]; ok {
		if r.TimeZone, err = str(tz, path+".timeZone"); err != nil {
			return nil, err
		}
		if loc, err = location(r.TimeZone); err != nil {
			return nil, invalid(path+".timeZone", "%v", err)
		}
	}
	if st, ok := o["startTime"]; ok {
		s, err := str(st, path+".startTime")
		if err != nil {
			return nil, err
		}
		if r.StartTime, err = parseTimeIn(s, loc); err != nil {
			return nil, invalid(path+".startTime", "%q is not a timestamp: write ISO 8601, e.g. 2024-05-01T09:30:00Z", keyhold.Clip(s))
		}
	}
	return r, nil
}

func (r Recurrence) loc() *time.Location {
	if r.TimeZone == "" {
		return time.UTC
	}
	l, err := location(r.TimeZone)
	if err != nil {
		return time.UTC
	}
	return l
}

func (r Recurrence) start() time.Time {
	if r.StartTime.IsZero() {
		return time.Date(1970, 1, 1, 0, 0, 0, 0, r.loc())
	}
	return r.StartTime.In(r.loc())
}

// step is one interval, approximately for Day, Week and Month.
func (r Recurrence) step() time.Duration {
	unit := map[string]time.Duration{"Second": time.Second, "Minute": time.Minute, "Hour": time.Hour,
		"Day": 24 * time.Hour, "Week": 7 * 24 * time.Hour, "Month": 30*24*time.Hour + 10*time.Hour}[r.Frequency]
	return unit * time.Duration(max(r.Interval, 1))
}

// slot is the k-th slot (0 is the start).
func (r Recurrence) slot(k int) time.Time {
	s := r.start()
	n := k * max(r.Interval, 1)
	switch r.Frequency {
	case "Day":
		return s.AddDate(0, 0, n)
	case "Week":
		return s.AddDate(0, 0, 7*n)
	case "Month":
		return s.AddDate(0, n, 0)
	}
	return s.Add(time.Duration(k) * r.step())
}

// floor is the index of the last slot at or before t; -1 if t is before
// the start.
func (r Recurrence) floor(t time.Time) int {
	s := r.start()
	if t.Before(s) {
		return -1
	}
	k := int(t.Sub(s) / r.step())
	for k > 0 && r.slot(k).After(t) {
		k--
	}
	for !r.slot(k + 1).After(t) {
		k++
	}
	return k
}

// Next is the first slot strictly after t.
func (r Recurrence) Next(t time.Time) time.Time {
	return r.slot(r.floor(t) + 1).UTC()
}

// MissedSlot is the latest slot in (last, now]: the one slot that fires
// after downtime, as Logic Apps catches up (the earlier missed slots are
// not run). ok is false if no slot fell in (last, now].
func (r Recurrence) MissedSlot(last, now time.Time) (time.Time, bool) {
	k := r.floor(now)
	if k < 0 {
		return time.Time{}, false
	}
	s := r.slot(k)
	if !s.After(last) {
		return time.Time{}, false
	}
	return s.UTC(), true
}

// Slots lists the slots in (from, to], at most max of them, earliest
// first.
func (r Recurrence) Slots(from, to time.Time, max int) []time.Time {
	var out []time.Time
	for k := r.floor(from) + 1; len(out) < max; k++ {
		s := r.slot(k)
		if s.After(to) {
			break
		}
		out = append(out, s.UTC())
	}
	return out
}

// TimeZones returns the supported time zone names (Windows names; their
// IANA names are accepted too), sorted.
func TimeZones() []string {
	out := make([]string, 0, len(timeZones))
	for k := range timeZones {
		out = append(out, k)
	}
	slices.Sort(out)
	return slices.DeleteFunc(out, func(s string) bool { return strings.TrimSpace(s) == "" })
}
