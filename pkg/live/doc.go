// Package live shows a running scenario: a terminal view redrawn a few
// times a second with ANSI escapes (elapsed time, the next steps, active
// faults with their packet counters, load rates, detector hits, verdicts),
// or plain timestamped lines when the output is not a terminal. Each line of
// the view is cut to the terminal's current width, so a redraw moves up
// exactly the rows the last one used.
package live
