package live

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/mattn/go-runewidth"
	"github.com/nfslab/nfslab/pkg/engine"
	"golang.org/x/sys/unix"
)

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Plain returns an OnEvent callback that writes one line per note.
func Plain(w io.Writer) func(engine.Note) {
	var mu sync.Mutex
	return func(n engine.Note) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s %-8s %s\n", n.Time.Format("15:04:05.000"), n.Kind, n.Text)
	}
}

// TermSize returns the size of the terminal w writes to, or 0, 0 if w is not
// a terminal. It is read at every redraw, so a resized window is followed.
func TermSize(w io.Writer) (cols, rows int) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, 0
	}
	return int(ws.Col), int(ws.Row)
}

// View redraws a status panel in place and keeps the last notes below it.
//
// The redraw moves the cursor up by the rows the last panel used, so no line
// may wrap: each line is cut to the terminal's width, and the panel to its
// height, as read from Size at every redraw. Nothing else may write to the
// terminal meanwhile, or the panel moves and a copy stays behind: log lines
// go through Log.
type View struct {
	W     io.Writer
	Every time.Duration // default 250ms (4 redraws a second)
	// Size reports the terminal's columns and rows, 0 if unknown (then lines
	// are not cut). Default: TermSize(W).
	Size func() (cols, rows int)

	mu      sync.Mutex
	status  func() engine.Status
	notes   []string
	drawn   []int  // display width of each line drawn last time
	partial []byte // a log line not yet ended
}

// Attach sets where the view reads its status from (engine OnStart).
func (v *View) Attach(r *engine.Runner) {
	v.mu.Lock()
	v.status = r.Status
	v.mu.Unlock()
}

// Note records a note for the log pane (engine OnEvent).
func (v *View) Note(n engine.Note) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.notes = append(v.notes, n.Time.Format("15:04:05")+" "+n.Text)
	if len(v.notes) > 8 {
		v.notes = v.notes[len(v.notes)-8:]
	}
}

// Run redraws until ctx ends, then draws once more.
func (v *View) Run(ctx context.Context) {
	every := v.Every
	if every == 0 {
		every = 250 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		v.draw()
		select {
		case <-ctx.Done():
			v.draw()
			return
		case <-t.C:
		}
	}
}

func (v *View) draw() {
	st, ok := v.snapshot()
	if !ok {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	cols, rows := v.size()
	io.WriteString(v.W, v.frame(Render(st, v.notes), cols, rows))
}

// snapshot reads the engine's status without holding v.mu: the engine may
// log (and so write through Log) while it holds its own lock.
func (v *View) snapshot() (engine.Status, bool) {
	v.mu.Lock()
	status := v.status
	v.mu.Unlock()
	if status == nil {
		return engine.Status{}, false
	}
	return status(), true
}

func (v *View) size() (cols, rows int) {
	if v.Size != nil {
		return v.Size()
	}
	return TermSize(v.W)
}

// Log returns a writer for log lines meant for the same terminal. Written
// straight to it they would push the panel down and leave stale copies of
// it; through Log each complete line replaces the panel, which is drawn again
// below it. The lines are printed as they are (they are never redrawn, so
// they may wrap).
func (v *View) Log() io.Writer { return logWriter{v} }

type logWriter struct{ v *View }

func (w logWriter) Write(p []byte) (int, error) {
	v := w.v
	st, ok := v.snapshot()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.partial = append(v.partial, p...)
	end := bytes.LastIndexByte(v.partial, '\n')
	if end < 0 {
		return len(p), nil
	}
	lines := string(v.partial[:end+1])
	v.partial = append(v.partial[:0], v.partial[end+1:]...)
	cols, rows := v.size()
	var b strings.Builder
	eraseRows(&b, rowsUsed(v.drawn, cols))
	v.drawn = v.drawn[:0]
	b.WriteString(lines)
	if ok {
		b.WriteString(v.frame(Render(st, v.notes), cols, rows))
	}
	if _, err := io.WriteString(v.W, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// frame is the escape sequence that replaces the last panel with text in a
// terminal of cols × rows (0: unknown), and remembers what it drew.
func (v *View) frame(text string, cols, rows int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if rows > 1 && len(lines) > rows-1 {
		// The cursor cannot move up past the screen's top row.
		lines = lines[:rows-1]
	}
	var b strings.Builder
	if up := rowsUsed(v.drawn, cols); up > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", up) // cursor up to the panel's top
	}
	v.drawn = v.drawn[:0]
	for _, l := range lines {
		l = strings.Map(printable, l)
		if cols > 1 {
			// One column spare: some terminals wrap as soon as the last
			// column is written.
			l = runewidth.Truncate(l, cols-1, "…")
		}
		v.drawn = append(v.drawn, runewidth.StringWidth(l))
		b.WriteString("\r\x1b[2K") // clear the line
		b.WriteString(l)
		b.WriteString("\n")
	}
	b.WriteString("\x1b[J") // clear what a longer previous panel left
	return b.String()
}

// eraseRows clears the n rows above the cursor and leaves it on the first
// of them. Row by row rather than with "erase below": from the screen's top
// row, tmux and others keep an erased screen in the scrollback, which would
// leave a copy of the panel there.
func eraseRows(b *strings.Builder, n int) {
	if n <= 0 {
		return
	}
	fmt.Fprintf(b, "\x1b[%dA", n)
	for i := range n {
		b.WriteString("\r\x1b[2K")
		if i < n-1 {
			b.WriteString("\x1b[B") // down, never scrolling
		}
	}
	if n > 1 {
		fmt.Fprintf(b, "\x1b[%dA", n-1)
	}
}

// rowsUsed is how many rows lines of these display widths take in a
// terminal cols wide. Lines were cut to the width they were drawn at; a
// terminal made narrower since may have rewrapped them (most do).
func rowsUsed(widths []int, cols int) int {
	n := 0
	for _, w := range widths {
		if cols > 0 && w > cols {
			n += (w + cols - 1) / cols
		} else {
			n++
		}
	}
	return n
}

// printable keeps a log line from moving the cursor: a tab becomes a space,
// other control characters (ESC included) are dropped.
func printable(r rune) rune {
	switch {
	case r == '\t':
		return ' '
	case unicode.IsControl(r):
		return -1
	}
	return r
}

// Render is the panel as text (no escapes), for the view and for tests.
func Render(s engine.Status, notes []string) string {
	var b strings.Builder
	bar := progress(s.Elapsed, s.Duration, 30)
	fmt.Fprintf(&b, "nfslab run %s  %s %v / %v\n", s.Scenario, bar, s.Elapsed.Round(100*time.Millisecond), s.Duration)
	if len(s.Next) > 0 {
		b.WriteString("next: ")
		for i, n := range s.Next {
			if i == 3 {
				fmt.Fprintf(&b, " (+%d more)", len(s.Next)-3)
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			if n.At >= 0 {
				fmt.Fprintf(&b, "%s %s in %v", n.Action, n.ID, (n.At - s.Elapsed).Round(100*time.Millisecond))
			} else {
				fmt.Fprintf(&b, "%s %s on %s", n.Action, n.ID, n.On)
			}
		}
		b.WriteString("\n")
	} else {
		b.WriteString("next: (every step started)\n")
	}
	for _, f := range s.Faults {
		state := "active"
		if f.Healed {
			state = "healed"
		}
		if f.Counted {
			fmt.Fprintf(&b, "fault %-14s %-7s %-6s %10d pkts %12d bytes\n", f.Step, f.Kind, state, f.Packets, f.Bytes)
		} else {
			fmt.Fprintf(&b, "fault %-14s %-7s %-6s (no counters)\n", f.Step, f.Kind, state)
		}
	}
	if l := s.Load; l != nil {
		if l.Source == "probe" {
			fmt.Fprintf(&b, "load: %.0f appends/s\n", l.AppendRate)
		} else {
			fmt.Fprintf(&b, "load: %d created, %d completed, %d errors /%v", l.Created, l.Completed, l.ErrorTotal(), l.Interval)
			if l.LatencyP99 > 0 {
				fmt.Fprintf(&b, ", p99 %v", l.LatencyP99)
			}
			b.WriteString("\n")
		}
	}
	if len(s.Hits) > 0 {
		var names []string
		for k := range s.Hits {
			names = append(names, k)
		}
		sort.Strings(names)
		b.WriteString("hits:")
		for _, k := range names {
			fmt.Fprintf(&b, " %s×%d", k, s.Hits[k])
		}
		b.WriteString("\n")
	}
	for _, vd := range s.Verdicts {
		if vd.Skipped {
			continue
		}
		mark := map[engine.State]string{engine.Pending: "…", engine.Held: "✔", engine.Failed: "✘"}[vd.State]
		fmt.Fprintf(&b, "%s %s\n", mark, vd.Name)
	}
	for _, n := range notes {
		b.WriteString("  " + n + "\n")
	}
	return b.String()
}

func progress(el, total time.Duration, width int) string {
	if total <= 0 {
		return ""
	}
	n := int(float64(width) * float64(el) / float64(total))
	n = max(0, min(n, width))
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
