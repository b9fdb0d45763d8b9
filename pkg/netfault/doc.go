// Package netfault injects network faults that nfslab owns: iptables DROP or
// REJECT rules (full or probabilistic) and unreachable/blackhole/prohibit
// routes. It proves that a fault bites by reading per-rule packet counters,
// explains a fault that matches nothing (from iptables, the nftables ruleset,
// conntrack, /proc and /sys), and finds and removes everything it
// created, even after a crash, because every kernel object carries an
// nfslab tag.
package netfault
