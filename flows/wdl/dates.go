package wdl

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // convertTimeZone and recurrences in a time zone work on hosts without zoneinfo
)

// timeZones maps the Windows time zone names that Power Automate uses
// (and the IANA names, which are accepted too) to locations. Only this
// fixed list is supported; docs/flows.md lists it.
var timeZones = map[string]string{
	"UTC":                            "UTC",
	"Coordinated Universal Time":     "UTC",
	"GMT Standard Time":              "Europe/London",
	"W. Europe Standard Time":        "Europe/Berlin",
	"Central Europe Standard Time":   "Europe/Budapest",
	"Romance Standard Time":          "Europe/Paris",
	"E. Europe Standard Time":        "Europe/Chisinau",
	"FLE Standard Time":              "Europe/Kiev",
	"Russian Standard Time":          "Europe/Moscow",
	"Eastern Standard Time":          "America/New_York",
	"Central Standard Time":          "America/Chicago",
	"Mountain Standard Time":         "America/Denver",
	"Pacific Standard Time":          "America/Los_Angeles",
	"Alaskan Standard Time":          "America/Anchorage",
	"Hawaiian Standard Time":         "Pacific/Honolulu",
	"E. South America Standard Time": "America/Sao_Paulo",
	"India Standard Time":            "Asia/Kolkata",
	"China Standard Time":            "Asia/Shanghai",
	"Singapore Standard Time":        "Asia/Singapore",
	"Tokyo Standard Time":            "Asia/Tokyo",
	"Arabian Standard Time":          "Asia/Dubai",
	"AUS Eastern Standard Time":      "Australia/Sydney",
	"New Zealand Standard Time":      "Pacific/Auckland",
}

// location returns the time zone named name, Windows or IANA, from the
// supported list.
func location(name string) (*time.Location, error) {
	iana, ok := timeZones[name]
	if !ok {
		for _, v := range timeZones {
			if v == name {
				iana, ok = v, true
				break
			}
		}
	}
	if !ok {
		return nil, fmt.Errorf("the time zone %q is not supported: use UTC or one of the names docs/flows.md lists, e.g. \"W. Europe Standard Time\"", name)
	}
	return time.LoadLocation(iana)
}

var dateFunctions = map[string]function{
	"utcnow": {0, 1, func(e *env, a []any) (any, error) {
		return formatArg(e.host.Now().UTC(), a, 0)
	}, nil},
	"adddays":    {2, 3, addFn(func(t time.Time, n float64) time.Time { return t.AddDate(0, 0, int(n)) }), nil},
	"addhours":   {2, 3, addFn(func(t time.Time, n float64) time.Time { return t.Add(time.Duration(n * float64(time.Hour))) }), nil},
	"addminutes": {2, 3, addFn(func(t time.Time, n float64) time.Time { return t.Add(time.Duration(n * float64(time.Minute))) }), nil},
	"addseconds": {2, 3, addFn(func(t time.Time, n float64) time.Time { return t.Add(time.Duration(n * float64(time.Second))) }), nil},
	"formatdatetime": {1, 3, func(_ *env, a []any) (any, error) {
		t, err := timeArg(a[0])
		if err != nil {
			return nil, err
		}
		if err := localeArg(a, 2); err != nil {
			return nil, err
		}
		return formatArg(t, a, 1)
	}, nil},
	"parsedatetime": {1, 3, func(_ *env, a []any) (any, error) {
		if err := localeArg(a, 1); err != nil {
			return nil, err
		}
		s, err := strArg(a[0], "the timestamp")
		if err != nil {
			return nil, err
		}
		if len(a) == 3 {
			layout, err := strArg(a[2], "the format")
			if err != nil {
				return nil, err
			}
			t, err := parseWithFormat(s, layout)
			if err != nil {
				return nil, err
			}
			return formatTime(t, "o"), nil
		}
		t, err := timeArg(s)
		if err != nil {
			return nil, err
		}
		return formatTime(t, "o"), nil
	}, nil},
	"startofday": {1, 2, func(_ *env, a []any) (any, error) {
		t, err := timeArg(a[0])
		if err != nil {
			return nil, err
		}
		return formatArg(time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location()), a, 1)
	}, nil},
	"ticks": {1, 1, func(_ *env, a []any) (any, error) {
		t, err := timeArg(a[0])
		if err != nil {
			return nil, err
		}
		// 100-nanosecond intervals since 0001-01-01T00:00:00Z, as .NET.
		return float64((t.Unix()+62135596800)*10_000_000 + int64(t.Nanosecond()/100)), nil
	}, nil},
	"converttimezone": {3, 4, func(_ *env, a []any) (any, error) {
		s, err := strArg(a[0], "the timestamp")
		if err != nil {
			return nil, err
		}
		src, err := strArg(a[1], "the source time zone")
		if err != nil {
			return nil, err
		}
		dst, err := strArg(a[2], "the destination time zone")
		if err != nil {
			return nil, err
		}
		from, err := location(src)
		if err != nil {
			return nil, errf("%v", err)
		}
		to, err := location(dst)
		if err != nil {
			return nil, errf("%v", err)
		}
		t, err := parseTimeIn(s, from)
		if err != nil {
			return nil, err
		}
		return formatArg(t.In(to), a, 3)
	}, nil},
	"dayofweek": {1, 1, func(_ *env, a []any) (any, error) {
		t, err := timeArg(a[0])
		if err != nil {
			return nil, err
		}
		return float64(t.Weekday()), nil
	}, nil},
}

func localeArg(a []any, i int) error {
	if len(a) <= i {
		return nil
	}
	loc, err := strArg(a[i], "the locale")
	if err != nil {
		return err
	}
	if loc != "" && !strings.EqualFold(loc, "en-US") && !strings.EqualFold(loc, "en") {
		return errf("the locale '%s' is not supported: use en-US", loc)
	}
	return nil
}

func addFn(add func(time.Time, float64) time.Time) func(*env, []any) (any, error) {
	return func(_ *env, a []any) (any, error) {
		t, err := timeArg(a[0])
		if err != nil {
			return nil, err
		}
		n, err := numArg(a[1], "the amount")
		if err != nil {
			return nil, err
		}
		return formatArg(add(t, n), a, 2)
	}
}

// formatArg formats t with the format in a[i], or "o" if there is none.
func formatArg(t time.Time, a []any, i int) (any, error) {
	format := "o"
	if len(a) > i && a[i] != nil {
		f, err := strArg(a[i], "the format")
		if err != nil {
			return nil, err
		}
		if f != "" {
			format = f
		}
	}
	if err := checkFormat(format); err != nil {
		return nil, err
	}
	return formatTime(t, format), nil
}

func timeArg(v any) (time.Time, error) {
	s, err := strArg(v, "the timestamp")
	if err != nil {
		return time.Time{}, err
	}
	return parseTimeIn(s, time.UTC)
}

// timeLayouts are the timestamp forms accepted: ISO 8601 with or without
// an offset (none means loc), and a date alone.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02", time.RFC1123, time.RFC1123Z}

func parseTimeIn(s string, loc *time.Location) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, strings.TrimSpace(s), loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errf("'%s' is not a timestamp: write ISO 8601, e.g. 2024-05-01T09:30:00Z", clipRunes(s, 60))
}

// dotnetTokens are the custom format specifiers supported, longest first.
var dotnetTokens = []string{"yyyy", "yy", "MMMM", "MMM", "MM", "M", "dddd", "ddd", "dd", "d", "HH", "H", "hh", "h",
	"mm", "m", "ss", "s", "fffffff", "ffffff", "fffff", "ffff", "fff", "ff", "f", "tt", "t", "K", "zzz", "zz", "z"}

// standardFormats are the .NET standard date formats supported, as custom
// patterns (en-US).
var standardFormats = map[string]string{
	"o": "yyyy-MM-ddTHH:mm:ss.fffffffK", "O": "yyyy-MM-ddTHH:mm:ss.fffffffK",
	"s": "yyyy-MM-ddTHH:mm:ss", "u": "yyyy-MM-dd HH:mm:ssZ",
	"d": "M/d/yyyy", "D": "dddd, MMMM d, yyyy",
	"t": "h:mm tt", "T": "h:mm:ss tt",
	"g": "M/d/yyyy h:mm tt", "G": "M/d/yyyy h:mm:ss tt",
	"f": "dddd, MMMM d, yyyy h:mm tt", "F": "dddd, MMMM d, yyyy h:mm:ss tt",
	"R": "ddd, dd MMM yyyy HH:mm:ss 'GMT'", "r": "ddd, dd MMM yyyy HH:mm:ss 'GMT'",
	"m": "MMMM d", "M": "MMMM d", "y": "MMMM yyyy", "Y": "MMMM yyyy",
}

// checkFormat refuses single-letter formats that are not standard ones
// (.NET does too); custom patterns always format.
func checkFormat(f string) error {
	if len(f) == 1 {
		if _, ok := standardFormats[f]; !ok {
			return errf("'%s' is not a supported date format: use a standard one (o, s, u, d, D, t, T, g, G, f, F, R, m, y) or a pattern like yyyy-MM-dd", f)
		}
	}
	return nil
}

// formatTime formats t with a .NET date format, standard or custom.
func formatTime(t time.Time, format string) string {
	if p, ok := standardFormats[format]; ok {
		if format == "u" || format == "R" || format == "r" {
			t = t.UTC()
		}
		format = p
	}
	var b strings.Builder
	for i := 0; i < len(format); {
		c := format[i]
		if c == '\'' || c == '"' {
			j := strings.IndexByte(format[i+1:], c)
			if j < 0 {
				b.WriteString(format[i+1:])
				break
			}
			b.WriteString(format[i+1 : i+1+j])
			i += j + 2
			continue
		}
		if c == '\\' && i+1 < len(format) {
			b.WriteByte(format[i+1])
			i += 2
			continue
		}
		tok := ""
		for _, k := range dotnetTokens {
			if strings.HasPrefix(format[i:], k) {
				tok = k
				break
			}
		}
		if tok == "" {
			b.WriteByte(c)
			i++
			continue
		}
		b.WriteString(formatToken(t, tok))
		i += len(tok)
	}
	return b.String()
}

func formatToken(t time.Time, tok string) string {
	h12 := t.Hour() % 12
	if h12 == 0 {
		h12 = 12
	}
	switch tok {
	case "yyyy":
		return fmt.Sprintf("%04d", t.Year())
	case "yy":
		return fmt.Sprintf("%02d", t.Year()%100)
	case "MMMM":
		return t.Month().String()
	case "MMM":
		return t.Month().String()[:3]
	case "MM":
		return fmt.Sprintf("%02d", int(t.Month()))
	case "M":
		return strconv.Itoa(int(t.Month()))
	case "dddd":
		return t.Weekday().String()
	case "ddd":
		return t.Weekday().String()[:3]
	case "dd":
		return fmt.Sprintf("%02d", t.Day())
	case "d":
		return strconv.Itoa(t.Day())
	case "HH":
		return fmt.Sprintf("%02d", t.Hour())
	case "H":
		return strconv.Itoa(t.Hour())
	case "hh":
		return fmt.Sprintf("%02d", h12)
	case "h":
		return strconv.Itoa(h12)
	case "mm":
		return fmt.Sprintf("%02d", t.Minute())
	case "m":
		return strconv.Itoa(t.Minute())
	case "ss":
		return fmt.Sprintf("%02d", t.Second())
	case "s":
		return strconv.Itoa(t.Second())
	case "tt":
		if t.Hour() < 12 {
			return "AM"
		}
		return "PM"
	case "t":
		if t.Hour() < 12 {
			return "A"
		}
		return "P"
	case "K":
		_, off := t.Zone()
		if t.Location() == time.UTC || off == 0 && t.Location().String() == "UTC" {
			return "Z"
		}
		return offset(off, true)
	case "zzz":
		_, off := t.Zone()
		return offset(off, true)
	case "zz", "z":
		_, off := t.Zone()
		s := offset(off, false)
		if tok == "z" {
			s = strings.Replace(s, "0", "", 1)
			if len(s) == 1 {
				s += "0"
			}
		}
		return s
	}
	// fffffff… : fractions of a second.
	n := len(tok)
	return fmt.Sprintf("%07d", t.Nanosecond()/100)[:n]
}

func offset(off int, minutes bool) string {
	sign := "+"
	if off < 0 {
		sign, off = "-", -off
	}
	if minutes {
		return fmt.Sprintf("%s%02d:%02d", sign, off/3600, off%3600/60)
	}
	return fmt.Sprintf("%s%02d", sign, off/3600)
}

// parseWithFormat parses s with a .NET custom pattern of the numeric
// specifiers (yyyy, MM, dd, HH, mm, ss and their short forms), in UTC.
func parseWithFormat(s, format string) (time.Time, error) {
	repl := strings.NewReplacer("yyyy", "2006", "MM", "01", "dd", "02", "HH", "15", "mm", "04", "ss", "05", "tt", "PM", "hh", "03")
	layout := repl.Replace(format)
	if strings.ContainsAny(strings.NewReplacer("2006", "", "01", "", "02", "", "15", "", "04", "", "05", "", "PM", "", "03", "").Replace(layout), "yMdHhmsft") {
		return time.Time{}, errf("the format '%s' is not supported by parseDateTime: use yyyy, MM, dd, HH, hh, mm, ss, tt", format)
	}
	t, err := time.ParseInLocation(layout, s, time.UTC)
	if err != nil {
		return time.Time{}, errf("'%s' does not match the format '%s'", clipRunes(s, 60), format)
	}
	return t, nil
}
