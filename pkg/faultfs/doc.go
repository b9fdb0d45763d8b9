// Package faultfs is a FUSE passthrough filesystem over a backing directory
// whose operations fail or stall on command: rules name an operation, a
// path glob, an errno, a probability, a latency and a count, and are set and
// cleared while the filesystem is mounted (directly, or over HTTP with
// Handler; Serve runs a mount with its control socket, as `nfslab faultfs
// mount` does). It gives real kernel-level storage faults (EIO on page
// writeback, SIGBUS on a mapped read) without NFS or a network.
//
// Kernel passthrough (FUSE_PASSTHROUGH) is never used: it would let the
// kernel read and write the backing files directly, past every rule.
package faultfs
