// Package publish makes what podman/netavark makes for `-p 127.0.0.1:2049:2049`
// in front of a server nfslab runs: a DNAT in the nat table from a published
// address and port (usually on loopback) to the server's address and port,
// net.ipv4.conf.all.route_localnet=1 so that a 127.0.0.0/8 destination may
// leave lo after the rewrite, and a MASQUERADE of the loopback source so the
// server sees (and its export admits) the client's veth address.
//
// It exists to reproduce the localhost pitfall of the NFS workshop (seed
// 000): a filter rule aimed at 127.0.0.1:2049 matches nothing because nat
// OUTPUT has already rewritten the destination.
//
// Everything is nfslab's: rules live in nfslab's own nat chains
// (NFSLAB-PUBLISH-OUT, -PRE, -POST) jumped to from position 1 of OUTPUT,
// PREROUTING and POSTROUTING with the comment "nfslab:publish"; each rule
// carries `-m comment --comment nfslab:publish-<id>`; a state record under
// /run/nfslab/publish keeps the previous route_localnet so that Unpublish
// and Sweep restore it. The chains and jumps (kept at rule 1), the
// iptables -S parser and the records are internal/ownchain's and
// internal/statefile's, shared with pkg/netfault. Side effects go through two small interfaces
// (IPTables, which go-iptables satisfies, and Sysctl) so the logic is tested
// with netfaulttest's in-memory iptables and the effect for real in
// namespaces the tests create.
package publish
