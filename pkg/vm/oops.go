package vm

import "strings"

// GuestPanic is a guest kernel's panic found on its serial console.
type GuestPanic struct {
	// Reason is what follows "Kernel panic - not syncing: ".
	Reason string
	// Excerpt is the oops that led to it (its first line to the panic
	// line, at most maxOopsLines), or without an oops report the lines
	// before the panic (as many).
	Excerpt []string
}

const (
	panicMarker  = "Kernel panic - not syncing: "
	maxOopsLines = 60
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
	var lines []string
	start, at := -1, -1
	for l := range consoleLines(console) {
		lines = append(lines, l)
		if start < 0 && hasAny(l, oopsStarts) {
			start = len(lines) - 1
		}
		if strings.Contains(l, panicMarker) {
			at = len(lines) - 1
			break
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
