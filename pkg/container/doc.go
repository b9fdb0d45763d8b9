// Package container runs nfslab's containers (the Zeebe broker, a
// containerized NFS server, test probes) through podman.
//
// Callers use the small Runtime interface; Podman implements it with the
// podman v5 REST bindings and Fake implements it in memory, failing the way
// podman does (ErrNotFound for 404, ErrConflict for 409, ErrNotModified for
// 304). Every container nfslab creates carries the io.nfslab.* labels, and
// Cleanup removes only containers with those labels.
//
// The bindings speak to a podman service (podman system service); both
// podman 4.3 (Debian 12) and podman 5 are supported by keeping to API calls
// both serve. StartService starts a private service when none runs.
package container
