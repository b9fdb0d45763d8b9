// Package journal defines the run journal: one JSON object per line (JSONL)
// describing everything a scenario run did and saw, in time order: the
// planned and actual time of each timeline step, faults applied and healed
// with their packet counters, per-second load samples, detector hits with
// their evidence lines, and the verdict of each expectation.
//
// The journal is the single source for report.md and report.html (package
// report) and for post-mortems, so its format only ever grows: fields and
// record types are added, never renamed or removed. Readers ignore unknown
// fields and unknown record types.
//
// Durations are encoded as integer nanoseconds (Go's time.Duration), times as
// RFC 3339 with nanoseconds.
package journal
