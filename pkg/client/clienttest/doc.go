// Package clienttest provides an in-memory netfault.Injector that fails like
// the kernel (unknown IDs are ErrNotFound, invalid specs ErrInvalid, expired
// faults linger until swept) for tests of the daemon, the client and the CLI.
package clienttest
