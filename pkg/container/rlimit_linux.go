package container

import "golang.org/x/sys/unix"

// DefaultRlimits are the limits given to containers whose Spec sets none.
// Podman's own defaults (nofile 1048576) exceed the hard limits of many
// sandboxes and CI machines, where runc then fails with "error setting
// rlimits ... operation not permitted"; the current process's limits are a
// safe bound, because a service started by nfslab inherits them.
func DefaultRlimits() []Rlimit {
	var out []Rlimit
	var nofile unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile) == nil && nofile.Max != unix.RLIM_INFINITY {
		n := min(nofile.Max, 1048576)
		out = append(out, Rlimit{Name: "nofile", Soft: n, Hard: n})
	}
	// nproc counts all of a user's processes; 32768 is far above what a
	// JVM needs and below every limit seen on CI machines.
	var nproc unix.Rlimit
	n := uint64(32768)
	if unix.Getrlimit(unix.RLIMIT_NPROC, &nproc) == nil && nproc.Cur != unix.RLIM_INFINITY {
		n = min(n, nproc.Cur)
	}
	out = append(out, Rlimit{Name: "nproc", Soft: n, Hard: n})
	return out
}
