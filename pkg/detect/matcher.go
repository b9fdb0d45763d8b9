package detect

import (
	"bytes"
	"fmt"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/journal"
)

// Options configures a Matcher.
type Options struct {
	// Detectors to run; nil means Builtins().
	Detectors []Detector
	// Source names the stream in hits (container name, file path).
	Source string
	// Clock stamps hits whose log lines carry no parseable time. Nil leaves
	// such hits without a time (post-mortem scans of files).
	Clock clock.Clock
	// Location interprets timestamps without a zone (Zeebe's default
	// pattern); nil means UTC.
	Location *time.Location
	// MaxLineBytes truncates longer lines (default 1 MiB).
	MaxLineBytes int
	// MaxGroupLines ends a grouped event after this many lines (default 256).
	MaxGroupLines int
}

// Matcher matches lines against detectors and reports hits through the
// emit callback given to New. It is not safe for concurrent use: one
// Matcher per stream.
type Matcher struct {
	opts Options
	dets []Detector
	emit func(journal.Hit)

	lits []literal // prefilter, for all detectors with literals
	// byAnchor lists, per byte value, the literals anchored on it.
	byAnchor [256][]int32
	minLit   int
	always   []int // detectors without literals: their regexp runs on every line
	partial  []byte
	skip     bool // discarding the rest of an over-long line
	ansi     []byte
	n        int // lines seen

	// Head of the current log record: the last timestamped line and the
	// few lines after it, copied (the input buffer is reused).
	rec      [recLines][]byte
	recLen   int
	recOver  bool
	recHasTS bool
	recTime  time.Time
	recTimed bool // recTime parsed for rec[0]
	// recCont: rec[0] ends with a level, so the message is on the next
	// lines (Zeebe's console pattern) and they share its context.
	recCont bool

	// Run of consecutive '#' lines, for banners.
	hash    [][]byte
	hashLen int

	open []*event

	// jsonTime overrides timestamps while the lines of one JSON record run.
	jsonTime *time.Time
	hitsSeen int
}

const recLines = 3

// MaxDetectors is how many detectors one Matcher runs (a bit per detector
// tracks which fired on a line).
const MaxDetectors = 64

type literal struct {
	b      []byte
	det    int
	anchor byte // the literal's rarest byte: candidates start around it
	off    int  // its offset in b
}

// rarity ranks how unusual a byte is in Java/Zeebe logs (lower is rarer):
// a literal is searched by its rarest byte, so the SIMD scan for that byte
// seldom stops on a false candidate.
func rarity(c byte) int {
	switch {
	case c == '_' || c == '(' || c == ')' || c == '#' || c == '~':
		return 1
	case c >= 'A' && c <= 'Z':
		if bytes.IndexByte([]byte("AEINORST"), c) >= 0 {
			return 3
		}
		return 1
	case c == 'k' || c == 'v' || c == 'x' || c == 'y' || c == 'q' || c == 'z' || c == 'j' || c == 'w':
		return 2
	case c >= '0' && c <= '9':
		return 5
	case c >= 'a' && c <= 'z':
		if bytes.IndexByte([]byte("etaoinsrlc"), c) >= 0 {
			return 7
		}
		return 4
	}
	return 6 // space and common punctuation
}

func newLiteral(l string, det int) literal {
	lit := literal{b: []byte(l), det: det}
	best := 1 << 30
	for i := 0; i < len(l); i++ {
		if r := rarity(l[i]); r < best {
			best, lit.anchor, lit.off = r, l[i], i
		}
	}
	return lit
}

type event struct {
	det    int
	lines  []string
	lineNo int
	time   time.Time
	left   int // GroupNext: lines still to take
}

// New returns a Matcher that calls emit for each hit, in order.
func New(opts Options, emit func(journal.Hit)) (*Matcher, error) {
	if opts.Detectors == nil {
		opts.Detectors = Builtins()
	}
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = 1 << 20
	}
	if opts.MaxGroupLines <= 0 {
		opts.MaxGroupLines = 256
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	m := &Matcher{opts: opts, dets: opts.Detectors, emit: emit, minLit: 1 << 30}
	if len(m.dets) > MaxDetectors {
		return nil, fmt.Errorf("%w: %d detectors, at most %d", ErrInvalid, len(m.dets), MaxDetectors)
	}
	seen := map[string]bool{}
	for i, d := range m.dets {
		if !nameRe.MatchString(d.Name) {
			return nil, fmt.Errorf("%w: name %q is not kebab-case", ErrInvalid, d.Name)
		}
		if seen[d.Name] {
			return nil, fmt.Errorf("%w: two detectors named %q", ErrInvalid, d.Name)
		}
		seen[d.Name] = true
		if len(d.Literals) == 0 {
			if d.Re == nil {
				return nil, fmt.Errorf("%w: %s has neither literals nor a regular expression", ErrInvalid, d.Name)
			}
			m.always = append(m.always, i)
			continue
		}
		for _, l := range d.Literals {
			if l == "" {
				return nil, fmt.Errorf("%w: %s has an empty literal", ErrInvalid, d.Name)
			}
			lit := newLiteral(l, i)
			m.byAnchor[lit.anchor] = append(m.byAnchor[lit.anchor], int32(len(m.lits)))
			m.lits = append(m.lits, lit)
			m.minLit = min(m.minLit, len(l))
		}
	}
	return m, nil
}

// Lines reports how many lines the Matcher has seen.
func (m *Matcher) Lines() int { return m.n }

// Write feeds a chunk of a stream; lines may be split across chunks.
// It never fails.
func (m *Matcher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			m.appendPartial(p)
			break
		}
		if len(m.partial) == 0 && !m.skip {
			m.Line(p[:i])
		} else {
			m.appendPartial(p[:i])
			m.Line(m.partial)
			m.partial = m.partial[:0]
		}
		m.skip = false
		p = p[i+1:]
	}
	return n, nil
}

func (m *Matcher) appendPartial(p []byte) {
	if m.skip {
		return
	}
	room := m.opts.MaxLineBytes - len(m.partial)
	if len(p) > room {
		p = p[:room]
		m.skip = true // the rest of this line is dropped
	}
	m.partial = append(m.partial, p...)
}

// Flush ends the stream: a last line without newline is matched and every
// open group is emitted.
func (m *Matcher) Flush() {
	if len(m.partial) > 0 || m.skip {
		m.Line(m.partial)
		m.partial = m.partial[:0]
		m.skip = false
	}
	m.FlushGroups()
}

// FlushGroups emits open grouped events (a stack trace whose end has not
// been seen), for live streams that went quiet.
func (m *Matcher) FlushGroups() {
	for _, e := range m.open {
		m.finish(e)
	}
	m.open = m.open[:0]
}

// Line matches one complete line (without its newline). The Matcher does
// not keep line after it returns.
func (m *Matcher) Line(line []byte) {
	m.n++
	if len(line) > m.opts.MaxLineBytes {
		line = line[:m.opts.MaxLineBytes]
	}
	if k := len(line); k > 0 && line[k-1] == '\r' {
		line = line[:k-1]
	}
	if bytes.IndexByte(line, 0x1b) >= 0 {
		m.ansi = stripANSI(m.ansi[:0], line)
		line = m.ansi
	}
	if j := firstNonSpace(line); j < len(line) && line[j] == '{' && m.prefilter(line) {
		if m.jsonLine(line[j:]) {
			return
		}
	}
	m.process(line, true)
}

func firstNonSpace(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

// prefilter reports whether any literal occurs in line.
func (m *Matcher) prefilter(line []byte) bool {
	if len(m.always) > 0 {
		return true
	}
	if len(line) < m.minLit {
		return false
	}
	return m.candidates(line) != 0
}

// candidates returns a bit per detector with a literal in line, in one
// pass over line: a table lookup per byte for the literals' anchor bytes,
// and a comparison only where an anchor occurs.
func (m *Matcher) candidates(line []byte) uint64 {
	var found uint64
	for i, c := range line {
		idx := m.byAnchor[c]
		if idx == nil {
			continue
		}
		for _, k := range idx {
			l := &m.lits[k]
			start := i - l.off
			if start < 0 || start+len(l.b) > len(line) || found&(1<<l.det) != 0 {
				continue
			}
			if string(line[start:start+len(l.b)]) == string(l.b) {
				found |= 1 << l.det
			}
		}
	}
	return found
}

// process runs one logical line: continuation of open events, then new
// triggers, then the record and banner context. track is false for the
// synthetic lines of a JSON record (they have their own context).
func (m *Matcher) process(line []byte, track bool) {
	var consumed uint64 // detectors whose open event took this line
	if len(m.open) > 0 {
		kept := m.open[:0]
		for _, e := range m.open {
			if m.continues(e, line) {
				e.lines = append(e.lines, string(line))
				consumed |= 1 << e.det
				if m.dets[e.det].Group == GroupNext && e.left == 0 {
					m.finish(e) // complete: report now, not at the next line
					continue
				}
				kept = append(kept, e)
				continue
			}
			m.finish(e)
		}
		m.open = kept
	}

	isHash := len(line) > 0 && line[0] == '#'
	stamped := track && looksTimestamped(line)
	if stamped {
		m.recHasTS, m.recTimed = true, false
		m.rec[0] = append(m.rec[0][:0], line...)
		m.recLen, m.recOver = 1, false
		m.recCont = endsWithLevel(line)
	}

	if len(line) >= m.minLit || len(m.always) > 0 {
		if found := m.candidates(line) &^ consumed; found != 0 {
			for d := range m.dets {
				if found&(1<<d) != 0 {
					m.trigger(d, line, stamped)
				}
			}
		}
		for _, d := range m.always {
			if consumed&(1<<d) == 0 {
				m.trigger(d, line, stamped)
			}
		}
	}

	if track && !stamped && m.recLen > 0 && !m.recOver {
		if m.recLen < recLines {
			m.rec[m.recLen] = append(m.rec[m.recLen][:0], line...)
			m.recLen++
		} else {
			m.recOver = true
		}
	}
	if isHash {
		if m.hashLen < 64 {
			if m.hashLen == len(m.hash) {
				m.hash = append(m.hash, nil)
			}
			m.hash[m.hashLen] = append(m.hash[m.hashLen][:0], line...)
			m.hashLen++
		}
	} else {
		m.hashLen = 0
	}
}

func (m *Matcher) continues(e *event, line []byte) bool {
	if len(e.lines) >= m.opts.MaxGroupLines {
		return false
	}
	switch m.dets[e.det].Group {
	case GroupStack:
		return isStackLine(line)
	case GroupBanner:
		return len(line) > 0 && line[0] == '#'
	case GroupNext:
		if e.left > 0 {
			e.left--
			return true
		}
	}
	return false
}

// isStackLine reports whether line continues a Java stack trace.
func isStackLine(line []byte) bool {
	i := firstNonSpace(line)
	rest := line[i:]
	switch {
	case i > 0 && bytes.HasPrefix(rest, []byte("at ")):
		return true
	case bytes.HasPrefix(rest, []byte("Caused by:")), bytes.HasPrefix(rest, []byte("Suppressed:")):
		return true
	case i > 0 && bytes.HasPrefix(rest, []byte("... ")):
		return true // "... 24 more", "... 3 common frames omitted"
	}
	return false
}

func (m *Matcher) trigger(det int, line []byte, stamped bool) {
	d := &m.dets[det]
	if d.Re != nil && !d.Re.Match(line) {
		return
	}
	e := &event{det: det, lineNo: m.n, time: m.hitTime()}
	// Context before the trigger line.
	switch {
	case d.Group == GroupBanner:
		for i := 0; i < m.hashLen; i++ {
			e.lines = append(e.lines, string(m.hash[i]))
		}
	case m.jsonTime != nil:
		// A JSON record's lines carry their own context.
	case !stamped && m.recCont && !m.recOver && m.recLen > 0:
		for i := 0; i < m.recLen; i++ {
			e.lines = append(e.lines, string(m.rec[i]))
		}
	}
	e.lineNo -= len(e.lines)
	e.lines = append(e.lines, string(line))
	if d.Group == GroupNone {
		m.finish(e)
		return
	}
	if d.Group == GroupNext {
		e.left = d.Next
	}
	m.open = append(m.open, e)
}

func (m *Matcher) hitTime() time.Time {
	if m.jsonTime != nil {
		return *m.jsonTime
	}
	if m.recHasTS {
		if !m.recTimed {
			m.recTime, _ = parseTime(m.rec[0], m.opts.Location)
			m.recTimed = true
		}
		if !m.recTime.IsZero() {
			return m.recTime
		}
	}
	if m.opts.Clock != nil {
		return m.opts.Clock.Now()
	}
	return time.Time{}
}

func (m *Matcher) finish(e *event) {
	d := &m.dets[e.det]
	h := journal.Hit{Detector: d.Name, Time: e.time, Source: m.opts.Source, Line: e.lineNo, Evidence: e.lines}
	f := map[string]string{}
	if d.Re != nil {
		for _, l := range e.lines {
			if sm := d.Re.FindStringSubmatch(l); sm != nil {
				for i, name := range d.Re.SubexpNames() {
					if name != "" && sm[i] != "" {
						f[name] = sm[i]
					}
				}
				break
			}
		}
	}
	if d.fields != nil {
		d.fields(e.lines, f)
	}
	if len(f) > 0 {
		h.Fields = f
	}
	m.hitsSeen++
	if m.emit != nil {
		m.emit(h)
	}
}

// stripANSI appends line without ANSI escape sequences (CSI "ESC [ ... final",
// OSC "ESC ] ... BEL/ST", and two-byte escapes) to dst.
func stripANSI(dst, line []byte) []byte {
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c != 0x1b {
			dst = append(dst, c)
			continue
		}
		if i+1 >= len(line) {
			break
		}
		switch line[i+1] {
		case '[':
			j := i + 2
			for j < len(line) && (line[j] < 0x40 || line[j] > 0x7e) {
				j++
			}
			i = j
		case ']':
			j := i + 2
			for j < len(line) && line[j] != 0x07 && !(line[j] == 0x1b && j+1 < len(line) && line[j+1] == '\\') {
				j++
			}
			if j < len(line) && line[j] == 0x1b {
				j++
			}
			i = j
		default:
			i++
		}
	}
	return dst
}

var levels = [][]byte{[]byte("TRACE"), []byte("DEBUG"), []byte("INFO"), []byte("WARN"), []byte("ERROR"), []byte("FATAL")}

// endsWithLevel reports whether a header line ends with its level, as in
// "[2025-06-12 09:02:00.819] [raft-server-0-1] [{...}] ERROR".
func endsWithLevel(l []byte) bool {
	l = bytes.TrimRight(l, " \t")
	for _, lv := range levels {
		if bytes.HasSuffix(l, lv) {
			return true
		}
	}
	return false
}
