package vm

import "strings"

// GuestPanic is a guest kernel's panic found on its serial console.
type GuestPanic struct {
	// Reason is what follows "Kernel panic - not syncing: ".
	Reason string
	// Excerpt is the oops that led to it (its first line to the panic
	// line, at most maxOopsLines), or without an oops report the lines
	// before the panic (as many), then the stack dumped after the panic
	// line (at most maxTraceLines).
	Excerpt []string
	// Hung marks the host's verdict that the guest stopped answering
	// (ErrGuestHung), not a panic the kernel printed: Reason is the
	// host's, Excerpt the console's last lines.
	Hung bool
}

// What says what happened to the guest.
func (p GuestPanic) What() string {
	if p.Hung {
		return ErrGuestHung.Error()
	}
	return "the guest kernel panicked"
}

// kind names the files kept of the dead boot (console.KIND.log,
// logs/STEP.KIND.log).
func (p GuestPanic) kind() string {
	if p.Hung {
		return "hung"
	}
	return "panic"
}

const (
	panicMarker  = "Kernel panic - not syncing: "
	maxOopsLines = 60
	// panic() dumps the panicking CPU's stack after its line (the only
	// stack a soft lockup shows at loglevel 4), up to this end marker.
	panicEnd      = "---[ end Kernel panic"
	maxTraceLines = 40
)

// notTheKernels are panics of nfslab's own making: the image's init (the
// agent) ended or the root file system is unusable. They repeat on every
// boot, so booting again is pointless.
var notTheKernels = []string{"Attempted to kill init", "No working init found", "VFS: Unable to mount root"}

// oopsStarts begin the report of a kernel oops, BUG or warning on the
// console, the start of the excerpt shown for a panic.
var oopsStarts = []string{"BUG: ", "Oops: ", "general protection fault", "kernel BUG at", "------------[ cut here ]------------"}

// FindGuestPanic looks for the guest kernel's panic on its console log (as
// written by qemu: lines may carry \r). ok is false when there is none, or
// when it is one of nfslab's own (its init ended): a second boot would
// meet it again.
func FindGuestPanic(console []byte) (GuestPanic, bool) {
	var lines, after []string
	start, at := -1, -1
	for l := range consoleLines(console) {
		if at >= 0 { // the stack panic() dumps after its line
			if strings.Contains(l, panicEnd) || len(after) == maxTraceLines {
				break
			}
			after = append(after, l)
			continue
		}
		lines = append(lines, l)
		if start < 0 && hasAny(l, oopsStarts) {
			start = len(lines) - 1
		}
		if strings.Contains(l, panicMarker) {
			at = len(lines) - 1
		}
	}
	if at < 0 {
		return GuestPanic{}, false
	}
	_, reason, _ := strings.Cut(lines[at], panicMarker)
	if hasAny(reason, notTheKernels) {
		return GuestPanic{}, false
	}
	p := GuestPanic{Reason: reason}
	switch {
	case start < 0: // no oops report: the lines before the panic
		p.Excerpt = append(p.Excerpt, lines[max(at-maxOopsLines+1, 0):at+1]...)
	case at-start < maxOopsLines:
		p.Excerpt = append(p.Excerpt, lines[start:at+1]...)
	default: // the oops' head (what and where) matters most
		p.Excerpt = append(p.Excerpt, lines[start:start+maxOopsLines-2]...)
		p.Excerpt = append(p.Excerpt, "[…]", lines[at])
	}
	p.Excerpt = append(p.Excerpt, after...)
	return p, true
}

func hasAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
