// Package container runs nfslab's containers (the Zeebe broker, a
// containerized NFS server, test probes).
//
// Callers use the small Runtime interface; package podman implements it with
// the podman v5 REST bindings and Fake implements it in memory, failing the
// way podman does (ErrNotFound for 404, ErrConflict for 409, ErrNotModified
// for 304). Every container nfslab creates carries the io.nfslab.* labels,
// and Cleanup removes only containers with those labels.
//
// This package does not import the bindings, so its users (pkg/cleanup, the
// daemon, bench/faults) build without the bindings' build tags.
package container
