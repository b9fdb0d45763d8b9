package detect

import (
	"strconv"
	"time"
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// looksTimestamped reports, cheaply, whether line starts a log record with a
// date: "[2025-06-12 09:02:00.819] ...", "2025-06-12T09:02:00.819Z ...",
// "2025/06/12 16:14:03 ...".
func looksTimestamped(l []byte) bool {
	if len(l) > 0 && l[0] == '[' {
		l = l[1:]
	}
	return len(l) >= 10 && isDigit(l[0]) && isDigit(l[1]) && isDigit(l[2]) && isDigit(l[3]) &&
		(l[4] == '-' || l[4] == '/') && isDigit(l[5]) && isDigit(l[6]) && l[7] == l[4] && isDigit(l[8]) && isDigit(l[9])
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.000000000",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05.000000000",
	"2006-01-02T15:04:05",
	"2006/01/02 15:04:05.000000000",
	"2006/01/02 15:04:05",
}

// parseTime parses the timestamp at the start of line. Zoneless times are
// in loc.
func parseTime(line []byte, loc *time.Location) (time.Time, bool) {
	if !looksTimestamped(line) {
		return time.Time{}, false
	}
	l := line
	if l[0] == '[' {
		l = l[1:]
	}
	// Date, then a space or 'T', then the time up to the next space or ']'.
	end := 10
	if end < len(l) && (l[end] == ' ' || l[end] == 'T') {
		end++
		for end < len(l) && l[end] != ' ' && l[end] != ']' {
			end++
		}
	}
	s := string(l[:end])
	// log4j's "HH:mm:ss,SSS" uses a comma.
	b := []byte(s)
	for i := 11; i < len(b); i++ {
		if b[i] == ',' {
			b[i] = '.'
		}
	}
	s = string(b)
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// parseJSONTime parses a JSON log timestamp: an RFC 3339 string, epoch
// milliseconds, or Stackdriver's timestampSeconds/timestampNanos.
func parseJSONTime(raw string, loc *time.Location) (time.Time, bool) {
	if raw == "" {
		return time.Time{}, false
	}
	if t, ok := parseTime([]byte(raw), loc); ok {
		return t, true
	}
	if ms, err := strconv.ParseFloat(raw, 64); err == nil && ms > 1e11 {
		return time.UnixMilli(int64(ms)).UTC(), true
	}
	return time.Time{}, false
}
