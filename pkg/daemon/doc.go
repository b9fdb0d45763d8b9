// Package daemon is nfslab's privileged daemon: an HTTP/JSON API on a unix
// socket that applies, lists and heals network faults through a
// netfault.Injector, heals each fault when its lifetime ends, checks that
// each fault bites (or explains why not), streams events and serves
// Prometheus metrics.
//
// The socket only admits root and members of its group (checked with
// SO_PEERCRED on every accepted connection). Other nfslab services register
// their own endpoints with (*Server).Handle and report through
// (*Server).Publish, so one daemon hosts them all.
package daemon
