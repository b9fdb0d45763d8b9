package probe

import "golang.org/x/sys/unix"

// noCoreDump sets RLIMIT_CORE of pid to 0: a crashing JVM still aborts
// (status 134) and writes its hs_err file, but no multi-megabyte core.
func noCoreDump(pid int) {
	_ = unix.Prlimit(pid, unix.RLIMIT_CORE, &unix.Rlimit{}, nil)
}
