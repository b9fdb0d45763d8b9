// Package detect finds, in streams of log lines, the events the Zeebe NFS
// workshop saw: the msync IOException with its stack trace, Raft going
// INACTIVE, the disk-space monitor pausing the stream processor, the JVM's
// SIGBUS fatal-error banner and its hs_err file, replay starting, partitions
// recovering, missing command-api handlers and client-side
// DEADLINE_EXCEEDED. Each event is a journal.Hit: detector name, time (from
// the log when it carries one), and the evidence lines, with multi-line
// events (a stack trace, a '#' banner) grouped into one hit.
//
// Lines come from containers (pushed with Write, in chunks that may split
// lines) or files (Scan). ANSI colour codes are stripped, CRLF endings
// trimmed, over-long lines truncated rather than fatal, and Zeebe's JSON log
// format (one object per line) is unpacked: its message and stack trace are
// matched as if they were plain lines.
//
// Speed: each line is first checked against the detectors' literals in one
// pass (a table of each literal's rarest byte, then a comparison where that
// byte occurs); only lines that contain a literal reach a
// regular expression, and only hits allocate. See docs/benchmarks-detect.md.
package detect
