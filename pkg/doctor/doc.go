// Package doctor checks whether this machine can run nfslab's experiments:
// root, the iptables backend and the matches nfslab's faults use (tested by
// really inserting rules in a throwaway network namespace, never the
// machine's own), NFS client and server support in the kernel, NFS LOCALIO,
// FUSE, podman and its socket, runc, java/javac, qemu and KVM. Each check
// has a status (ok, warn, fail), a detail and a fix. Report.Require names
// why a chosen experiment cannot run here.
//
// Every probe goes through the Probe interface; NewProbe is the real one.
package doctor
