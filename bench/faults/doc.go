// Command faults measures the latency of applying and healing one drop
// fault through nfslab's daemon (HTTP over its unix socket), through the
// direct path (netfault.Manager in-process) and with raw `iptables -I` /
// `iptables -D` of the same rule, in the same run, inside a throwaway
// network namespace, and prints the ratios. It also times the `nfslab drop`
// and `nfslab heal` commands end to end when given the binary.
//
//	TAGS='remote containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper'
//	CGO_ENABLED=0 go build -tags "$TAGS" -o /tmp/nfslab ./cmd/nfslab
//	CGO_ENABLED=0 go run -tags "$TAGS" ./bench/faults -n 40 -nfslab /tmp/nfslab
//
// It imports no podman bindings, so it also builds without the tags
// (a plain go build of ./bench/faults works); cmd/nfslab needs them.
//
// It needs root. It creates namespace nfslt-bench-XXXX, re-executes itself
// inside it, and deletes it at the end; the caller's namespace is never
// touched (the inner run checks which namespace it is in before anything).
package main
