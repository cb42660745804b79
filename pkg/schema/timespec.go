package schema

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxInterval bounds interval triggers (a longer period is surely a typo).
const maxInterval = 366 * 24 * time.Hour

// intervalUnits maps the unit words pytimeparse accepts to their length.
var intervalUnits = map[string]time.Duration{
	"w": 7 * 24 * time.Hour, "wk": 7 * 24 * time.Hour, "wks": 7 * 24 * time.Hour,
	"week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
}

// ParseInterval parses a trigger interval the way Kraken (pytimeparse) does:
// "90s", "10m", "1h30m", "1h 30m", "2 hours", "1.5h", "1w2d", a bare number
// of seconds ("600"), or a clock form "MM:SS" / "HH:MM:SS". The result is
// positive and at most a year.
func ParseInterval(s string) (time.Duration, error) {
	d, err := parseInterval(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return 0, fmt.Errorf("invalid interval %q: %w (write e.g. \"90s\", \"10m\" or \"1h30m\")", short(s), err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("invalid interval %q: must be positive", short(s))
	}
	if d > maxInterval {
		return 0, fmt.Errorf("invalid interval %q: longer than a year", short(s))
	}
	return d, nil
}

func parseInterval(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty")
	}
	if strings.Contains(s, ":") {
		return parseClock(s)
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && isDecimal(s) {
		return seconds(f)
	}
	var total time.Duration
	for rest := s; rest != ""; {
		rest = strings.TrimLeft(rest, " ,")
		if strings.HasPrefix(rest, "and ") {
			rest = rest[len("and "):]
			continue
		}
		if rest == "" {
			break
		}
		n := prefixLen(rest, func(b byte) bool { return b >= '0' && b <= '9' || b == '.' })
		if n == 0 {
			return 0, fmt.Errorf("expected a number at %q", short(rest))
		}
		num, err := strconv.ParseFloat(rest[:n], 64)
		if err != nil {
			return 0, fmt.Errorf("bad number %q", rest[:n])
		}
		rest = strings.TrimLeft(rest[n:], " ")
		u := prefixLen(rest, func(b byte) bool { return b >= 'a' && b <= 'z' })
		unit, ok := intervalUnits[rest[:u]]
		if !ok {
			return 0, fmt.Errorf("unknown unit %q", rest[:u])
		}
		rest = rest[u:]
		if num*float64(unit) > float64(2*maxInterval) {
			return 0, fmt.Errorf("longer than a year")
		}
		total += time.Duration(num * float64(unit))
		if total > maxInterval {
			return 0, fmt.Errorf("longer than a year")
		}
	}
	return total, nil
}

// parseClock parses "MM:SS" or "HH:MM:SS" (seconds may have a fraction).
func parseClock(s string) (time.Duration, error) {
	parts := strings.Split(s, ":")
	if len(parts) > 3 {
		return 0, fmt.Errorf("too many colons")
	}
	var total time.Duration
	units := []time.Duration{time.Second, time.Minute, time.Hour}
	for i := range parts {
		part := parts[len(parts)-1-i]
		if !isDecimal(part) || (i > 0 && strings.Contains(part, ".")) {
			return 0, fmt.Errorf("bad clock field %q", part)
		}
		f, err := strconv.ParseFloat(part, 64)
		if err != nil || f > 1e7 {
			return 0, fmt.Errorf("bad clock field %q", part)
		}
		total += time.Duration(f * float64(units[i]))
	}
	return total, nil
}

func seconds(f float64) (time.Duration, error) {
	if f > float64(2*maxInterval/time.Second) {
		return 0, fmt.Errorf("longer than a year")
	}
	return time.Duration(f * float64(time.Second)), nil
}

// isDecimal reports whether s is digits with at most one dot.
func isDecimal(s string) bool {
	dots := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '.':
			dots++
		case s[i] < '0' || s[i] > '9':
			return false
		}
	}
	return s != "" && s != "." && dots <= 1
}

func prefixLen(s string, ok func(byte) bool) int {
	i := 0
	for i < len(s) && ok(s[i]) {
		i++
	}
	return i
}

// dateLayouts are the date trigger formats accepted (dateutil accepts more;
// these are the unambiguous ones). A date without a zone is UTC.
var dateLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
	"2006/01/02 15:04:05",
	"2006/01/02 15:04",
	"2006/01/02",
}

// ParseDate parses a date trigger such as "2012-01-19 17:21:00" (UTC unless a
// zone is given, e.g. "2012-01-19T17:21:00+02:00").
func ParseDate(s string) (time.Time, error) {
	t := strings.TrimSpace(s)
	for _, layout := range dateLayouts {
		if d, err := time.ParseInLocation(layout, t, time.UTC); err == nil {
			return d, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid date %q (write e.g. \"2012-01-19 17:21:00\")", short(s))
}
