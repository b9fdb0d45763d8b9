// Package live shows a running scenario: a terminal view redrawn a few
// times a second with ANSI escapes (elapsed time, the next steps, active
// faults with their packet counters, load rates, detector hits, verdicts),
// or plain timestamped lines when the output is not a terminal.
package live
