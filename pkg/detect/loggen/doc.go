// Package loggen writes deterministic Zeebe-like broker logs for the
// detector benchmark: two-line records in Zeebe's console pattern (header
// with timestamp, thread, MDC and level; then "\tlogger - message"), mostly
// ordinary INFO/DEBUG traffic, with the workshop's failures (msync stack
// trace, INACTIVE, out of disk, replay, SIGBUS banner, ...) sprinkled in
// at a low, fixed rate. The same seed and line count give the same bytes.
package loggen
