package live

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/engine"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal of cols × rows; no privilege needed.
func openPTY(t *testing.T, cols, rows uint16) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	setSize(t, s, cols, rows)
	return m, s
}

func setSize(t *testing.T, f *os.File, cols, rows uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows}); err != nil {
		t.Fatalf("set window size: %v", err)
	}
}

// screen is a small model of a VT100-style terminal: autowrap at the right
// margin (deferred, as xterm does), CR, LF, cursor up and down, erase line
// and erase below. Its height is unbounded, so a stale panel stays visible. The test
// resizes it in step with the pty through a private OSC sequence.
type screen struct {
	cols     int
	rows     [][]rune
	row, col int
	wrap     bool // the last column was written; the next rune wraps
}

const resizeOSC = "\x1b]9999;"

func (s *screen) line() []rune {
	for len(s.rows) <= s.row {
		s.rows = append(s.rows, nil)
	}
	return s.rows[s.row]
}

func (s *screen) put(r rune) {
	if s.wrap {
		s.row, s.col, s.wrap = s.row+1, 0, false
	}
	l := s.line()
	for len(l) <= s.col {
		l = append(l, ' ')
	}
	l[s.col] = r
	s.rows[s.row] = l
	if s.col == s.cols-1 {
		s.wrap = true
	} else {
		s.col++
	}
}

func (s *screen) feed(t *testing.T, out string) {
	t.Helper()
	rs := []rune(out)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; {
		case r == '\r':
			s.col, s.wrap = 0, false
		case r == '\n':
			s.row, s.wrap = s.row+1, false
		case r == 0x1b && strings.HasPrefix(string(rs[i:]), resizeOSC):
			j := i + len(resizeOSC)
			k := j
			for rs[k] != '\a' {
				k++
			}
			s.cols, _ = strconv.Atoi(string(rs[j:k]))
			i = k
		case r == 0x1b && i+1 < len(rs) && rs[i+1] == '[':
			j := i + 2
			for j < len(rs) && (rs[j] >= '0' && rs[j] <= '9' || rs[j] == ';') {
				j++
			}
			n, _ := strconv.Atoi(string(rs[i+2 : j]))
			switch rs[j] {
			case 'A':
				s.row, s.wrap = max(0, s.row-max(n, 1)), false
			case 'B':
				s.row, s.wrap = s.row+max(n, 1), false
			case 'K': // only ESC[2K is used: the whole line
				s.line()
				s.rows[s.row] = nil
			case 'J': // ESC[J: from the cursor to the end of the screen
				l := s.line()
				s.rows[s.row] = l[:min(len(l), s.col)]
				s.rows = s.rows[:s.row+1]
			default:
				t.Fatalf("escape %q not modelled", string(rs[i:j+1]))
			}
			i = j
		case r < 0x20:
			t.Fatalf("control %q not modelled", r)
		default:
			s.put(r)
		}
	}
}

func (s *screen) String() string {
	var b strings.Builder
	for _, l := range s.rows {
		b.WriteString(strings.TrimRight(string(l), " ") + "\n")
	}
	return b.String()
}

// TestViewRedrawsByRows redraws a panel with a line wider than the terminal
// (the msync evidence line) in a 140-column pty, then again after the window
// shrank to 100 columns: the screen must show the panel once, no line wrapped.
func TestViewRedrawsByRows(t *testing.T) {
	master, slave := openPTY(t, 140, 50)
	got := readAll(master)

	evidence := "java.io.IOException: msync failed: " + strings.Repeat("E", 165) // 200 columns
	elapsed := time.Duration(0)
	v := &View{W: slave}
	v.status = func() engine.Status {
		return engine.Status{Scenario: "faultfs-full-drop", Elapsed: elapsed, Duration: 90 * time.Second,
			Hits:     map[string]int{"msync-eio": 1},
			Verdicts: []engine.Verdict{{Name: "msync fires", State: engine.Held}}}
	}
	v.Note(engine.Note{Time: time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC), Text: "drop-nfs applied"})
	v.Note(engine.Note{Time: time.Date(2026, 1, 2, 9, 0, 1, 0, time.UTC), Text: evidence})

	v.draw()
	elapsed = 10 * time.Second
	v.draw()
	elapsed = 11 * time.Second
	v.draw()
	// The window shrinks: the next redraw must follow it.
	setSize(t, slave, 100, 50)
	fmt.Fprintf(slave, "%s100\a", resizeOSC)
	elapsed = 12 * time.Second
	v.draw()
	slave.Close()

	var out string
	select {
	case out = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("pty output did not end")
	}
	sc := &screen{cols: 140}
	sc.feed(t, out)
	text := sc.String()
	if n := strings.Count(text, "nfslab run faultfs-full-drop"); n != 1 {
		t.Errorf("the screen shows the panel header %d times, want 1:\n%s", n, text)
	}
	if !strings.Contains(text, "12s / 1m30s") || strings.Contains(text, "11s / 1m30s") {
		t.Errorf("the screen does not show the last panel:\n%s", text)
	}
	if !strings.Contains(text, "java.io.IOException: msync failed: EEE") {
		t.Errorf("the evidence line is gone:\n%s", text)
	}
	for _, l := range sc.rows {
		if len(l) >= 100 {
			t.Errorf("a line fills the 100-column terminal (%d runes): %q", len(l), string(l))
		}
	}
	if want := 6; len(strings.Split(strings.TrimRight(text, "\n"), "\n")) != want {
		t.Errorf("the panel does not use its %d rows:\n%s", want, text)
	}
}

// readAll collects what the pty shows until the slave is closed.
func readAll(master *os.File) <-chan string {
	got := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			b.Write(buf[:n])
			if err != nil { // EIO once the slave is closed and drained
				got <- b.String()
				return
			}
		}
	}()
	return got
}

// TestViewLogLinesGoAbove writes log lines (one wider than the terminal, as
// slog's "faultfs mounted" is) to the same terminal between redraws, as a
// run does: they must end up above the panel, once each, and the panel shown
// once below them.
func TestViewLogLinesGoAbove(t *testing.T) {
	master, slave := openPTY(t, 140, 50)
	got := readAll(master)
	elapsed := time.Duration(0)
	v := &View{W: slave}
	v.status = func() engine.Status {
		return engine.Status{Scenario: "faultfs-full-drop", Elapsed: elapsed, Duration: 90 * time.Second}
	}
	mounted := "time=2026-12-02T06:14:58.360Z level=INFO msg=\"faultfs mounted\" backing=" + strings.Repeat("b", 200) + "\n"
	log := v.Log()
	fmt.Fprint(log, "time=2026-12-02T06:14:58.000Z level=INFO msg=start\n") // before the first draw
	v.draw()
	io.WriteString(log, mounted[:100]) // a line in two writes
	elapsed = 5 * time.Second
	v.draw() // the half line must not show yet
	io.WriteString(log, mounted[100:])
	elapsed = 10 * time.Second
	v.draw()
	fmt.Fprint(log, "time=2026-12-02T06:15:08.413Z level=INFO msg=\"faultfs unmounted\"\n")
	slave.Close()

	var out string
	select {
	case out = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("pty output did not end")
	}
	sc := &screen{cols: 140}
	sc.feed(t, out)
	text := sc.String()
	if n := strings.Count(text, "nfslab run faultfs-full-drop"); n != 1 {
		t.Errorf("the screen shows the panel header %d times, want 1:\n%s", n, text)
	}
	want := []string{"msg=start", "faultfs mounted", "faultfs unmounted", "nfslab run faultfs-full-drop", "10s / 1m30s"}
	at := -1
	for _, w := range want {
		i := strings.Index(text, w)
		if i <= at || strings.Count(text, w) != 1 {
			t.Errorf("%q is not shown once, in order, above the panel:\n%s", w, text)
		}
		at = i
	}
	if !strings.Contains(strings.ReplaceAll(text, "\n", ""), strings.Repeat("b", 200)) {
		t.Errorf("the wide log line is not shown whole:\n%s", text)
	}
}

func TestRowsUsed(t *testing.T) {
	for _, c := range []struct {
		widths []int
		cols   int
		want   int
	}{
		{nil, 80, 0},
		{[]int{0, 10, 139}, 140, 3},
		{[]int{139, 10}, 100, 3}, // rewrapped after the window shrank
		{[]int{100}, 100, 1},
		{[]int{250}, 0, 1}, // width unknown
	} {
		if got := rowsUsed(c.widths, c.cols); got != c.want {
			t.Errorf("rowsUsed(%v, %d) = %d, want %d", c.widths, c.cols, got, c.want)
		}
	}
}

// TestViewCutsToHeight keeps the panel within the screen: the cursor cannot
// move up past its top row.
func TestViewCutsToHeight(t *testing.T) {
	v := &View{}
	out := v.frame(strings.Repeat("line\n", 30), 80, 10)
	if n := strings.Count(out, "\n"); n != 9 {
		t.Errorf("drew %d lines on a 10-row screen, want 9", n)
	}
	out = v.frame("a\nb\n", 80, 10)
	if !strings.HasPrefix(out, "\x1b[9A") {
		t.Errorf("redraw does not move up the 9 rows drawn: %q", out)
	}
}
