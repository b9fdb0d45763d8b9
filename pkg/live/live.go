package live

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

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

// View redraws a status panel in place and keeps the last notes below it.
type View struct {
	W     io.Writer
	Every time.Duration // default 250ms (4 redraws a second)

	mu     sync.Mutex
	status func() engine.Status
	notes  []string
	lines  int // lines drawn last time, to move the cursor back up
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
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.status == nil {
		return
	}
	text := Render(v.status(), v.notes)
	var b strings.Builder
	if v.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.lines) // cursor up to the panel's top
	}
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		b.WriteString("\x1b[2K") // clear the line
		b.WriteString(l)
		b.WriteString("\n")
	}
	b.WriteString("\x1b[J") // clear what a longer previous panel left
	v.lines = strings.Count(strings.TrimRight(text, "\n"), "\n") + 1
	io.WriteString(v.W, b.String())
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
