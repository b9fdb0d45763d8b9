// Package client is the only way nfslab's CLI talks to network faults. A
// Client either talks to the daemon over its unix socket or wraps a
// netfault.Injector in-process (the "direct" path, for ad hoc use and for
// `nfslab heal --all` with the daemon dead); Auto picks the daemon when it
// answers. Both paths behave the same: ErrInvalid and ErrNotFound come back
// as such, and faults expire on their own on both.
package client
