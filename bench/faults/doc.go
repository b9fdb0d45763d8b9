// Command faults measures the latency of applying and healing one drop
// fault through nfslab's daemon (HTTP over its unix socket), through the
// direct path (netfault.Manager in-process) and with raw `iptables -I` /
// `iptables -D` of the same rule, in the same run, inside a throwaway
// network namespace, and prints the ratios. It also times the `nfslab drop`
// and `nfslab heal` commands end to end when given the binary.
//
//	go build -o /tmp/nfslab ./cmd/nfslab
//	go run ./bench/faults -n 40 -nfslab /tmp/nfslab
//
// It needs root. It creates namespace nfslt-bench-XXXX, re-executes itself
// inside it, and deletes it at the end; the caller's namespace is never
// touched (the inner run checks which namespace it is in before anything).
package main
