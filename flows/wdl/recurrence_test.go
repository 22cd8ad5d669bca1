package wdl

import (
	"testing"
	"time"
)

func recurrence(t *testing.T, rec string) Recurrence {
	t.Helper()
	d := mustParse(t, `{"triggers": {"r": {"type": "Recurrence", "recurrence": `+rec+`}}, "actions": {}}`)
	return *d.Trigger().Recurrence
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestRecurrenceNext(t *testing.T) {
	cases := []struct{ name, rec, after, want string }{
		{"before the start", `{"frequency": "Hour", "interval": 2, "startTime": "2024-05-01T10:00:00Z"}`, "2024-04-01T00:00:00Z", "2024-05-01T10:00:00Z"},
		{"at a slot is strictly after", `{"frequency": "Hour", "interval": 2, "startTime": "2024-05-01T10:00:00Z"}`, "2024-05-01T12:00:00Z", "2024-05-01T14:00:00Z"},
		{"between slots", `{"frequency": "Minute", "interval": 15, "startTime": "2024-05-01T10:05:00Z"}`, "2024-05-03T00:00:00Z", "2024-05-03T00:05:00Z"},
		{"seconds", `{"frequency": "Second", "interval": 30}`, "2024-05-01T10:00:10Z", "2024-05-01T10:00:30Z"},
		{"no start time counts from the epoch", `{"frequency": "Day", "interval": 1}`, "2024-05-01T10:00:00Z", "2024-05-02T00:00:00Z"},
		{"daily in a zone keeps wall time over DST", `{"frequency": "Day", "interval": 1, "startTime": "2024-03-01T08:00:00", "timeZone": "W. Europe Standard Time"}`, "2024-03-31T06:00:00Z", "2024-04-01T06:00:00Z"},
		{"daily before the change", `{"frequency": "Day", "interval": 1, "startTime": "2024-03-01T08:00:00", "timeZone": "W. Europe Standard Time"}`, "2024-03-29T08:00:00Z", "2024-03-30T07:00:00Z"},
		{"weekly", `{"frequency": "Week", "interval": 2, "startTime": "2024-01-01T09:00:00Z"}`, "2024-01-20T00:00:00Z", "2024-01-29T09:00:00Z"},
		{"monthly", `{"frequency": "Month", "interval": 1, "startTime": "2024-01-15T09:00:00Z"}`, "2026-07-20T00:00:00Z", "2026-08-15T09:00:00Z"},
		{"every 3 months", `{"frequency": "Month", "interval": 3, "startTime": "2024-01-15T09:00:00Z"}`, "2024-04-15T09:00:00Z", "2024-07-15T09:00:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := recurrence(t, c.rec)
			if got := r.Next(ts(c.after)); !got.Equal(ts(c.want)) {
				t.Fatalf("Next(%s) = %s, want %s", c.after, got, c.want)
			}
		})
	}
}

// TestMissedSlot: after downtime only the latest missed slot fires.
func TestMissedSlot(t *testing.T) {
	r := recurrence(t, `{"frequency": "Hour", "interval": 1, "startTime": "2024-05-01T00:00:00Z"}`)
	s, ok := r.MissedSlot(ts("2024-05-01T03:00:00Z"), ts("2024-05-01T07:30:00Z"))
	if !ok || !s.Equal(ts("2024-05-01T07:00:00Z")) {
		t.Fatalf("MissedSlot = %s %v", s, ok)
	}
	if _, ok := r.MissedSlot(ts("2024-05-01T07:00:00Z"), ts("2024-05-01T07:59:59Z")); ok {
		t.Fatal("a slot already fired counted as missed")
	}
	if _, ok := r.MissedSlot(time.Time{}, ts("2024-04-30T00:00:00Z")); ok {
		t.Fatal("a slot before the start")
	}
	got := r.Slots(ts("2024-05-01T03:00:00Z"), ts("2024-05-01T07:30:00Z"), 3)
	if len(got) != 3 || !got[0].Equal(ts("2024-05-01T04:00:00Z")) || !got[2].Equal(ts("2024-05-01T06:00:00Z")) {
		t.Fatalf("Slots = %v", got)
	}
}

// TestEvaluatedRecurrence accepts the exported copy of the same schedule.
func TestEvaluatedRecurrence(t *testing.T) {
	_, err := Parse([]byte(`{"triggers": {"t": {"type": "Recurrence", "recurrence": {"frequency": "Day", "interval": 1, "timeZone": "UTC"}, "evaluatedRecurrence": {"frequency": "Day", "interval": 1, "timeZone": "UTC"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
}
