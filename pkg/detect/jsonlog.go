package detect

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// jsonLine handles one line of a JSON log (Zeebe's StackdriverLayout or
// JSON template layouts): its message and stack trace are matched as plain
// lines, with the record's time. It reports false if line is not a JSON
// object, so the caller matches it as text.
func (m *Matcher) jsonLine(line []byte) bool {
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(line, &rec); err != nil {
		return false
	}
	str := func(keys ...string) string {
		for _, k := range keys {
			raw, ok := rec[k]
			if !ok {
				continue
			}
			var s string
			if json.Unmarshal(raw, &s) == nil {
				return s
			}
			var f json.Number
			if json.Unmarshal(raw, &f) == nil {
				return f.String()
			}
		}
		return ""
	}
	var t time.Time
	if sec := str("timestampSeconds"); sec != "" {
		s, _ := strconv.ParseInt(sec, 10, 64)
		ns, _ := strconv.ParseInt(str("timestampNanos"), 10, 64)
		t = time.Unix(s, ns).UTC()
	} else if ts, ok := parseJSONTime(str("timestamp", "@timestamp", "time", "ts"), m.opts.Location); ok {
		t = ts
	}

	msg := str("message", "msg")
	head := strings.TrimSpace(strings.Join([]string{str("severity", "level", "log.level"), str("logger", "loggerName", "logger_name", "log.logger")}, " "))
	if head != "" {
		msg = head + " - " + msg
	}
	lines := []string{msg}
	trace := str("stack_trace", "stackTrace", "error.stack_trace")
	if trace == "" {
		if raw, ok := rec["exception"]; ok {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				trace = s
			} else {
				var obj map[string]json.RawMessage
				if json.Unmarshal(raw, &obj) == nil {
					for _, k := range []string{"stack_trace", "stackTrace", "extendedStackTrace", "message"} {
						if json.Unmarshal(obj[k], &s) == nil && s != "" {
							trace = s
							break
						}
					}
				}
			}
		}
	}
	if trace != "" {
		lines = append(lines, strings.Split(strings.TrimRight(trace, "\n"), "\n")...)
	}

	// A JSON record is a record of its own: close what was open before it,
	// and what it opened at its end.
	m.FlushGroups()
	m.recLen, m.recHasTS, m.hashLen = 0, false, 0
	var tp *time.Time
	if !t.IsZero() {
		tp = &t
	} else if m.opts.Clock != nil {
		now := m.opts.Clock.Now()
		tp = &now
	} else {
		zero := time.Time{}
		tp = &zero
	}
	m.jsonTime = tp
	for _, l := range lines {
		m.process([]byte(strings.TrimRight(l, "\r")), false)
	}
	m.FlushGroups()
	m.jsonTime = nil
	return true
}
