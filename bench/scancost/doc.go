// Package scancost measures, in the lab VM, what one listing of nfslab's
// faults costs (`nfslab status`, in process: the scan a scenario runs for
// every counter sample) against the raw commands of a scan (`iptables -v
// -S` of NFSLAB-OUTPUT and NFSLAB-INPUT, IPv4 and IPv6), in the same boot,
// with one drop fault in a network namespace of its own. Under TCG each
// command costs tens of milliseconds of CPU, so the count matters. It is
// a guest test, built with its own tag so no other run picks it up:
//
//	TAGS='remote containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper'
//	CGO_ENABLED=0 go build -tags "$TAGS" -o bin/nfslab ./cmd/nfslab
//	CGO_ENABLED=0 go test -tags scanguest -c -o bin/scancost.test ./bench/scancost
//	sudo bin/nfslab vm run --guest trixie --tests-only --test-binary 'bin/scancost.test=^TestScanCost$' --out /tmp/scancost
//
// To compare with an older nfslab, build it as bin/nfslab-old (e.g. from a
// `git worktree` of that commit) and add `--test-binary bin/nfslab-old`
// before the test: vm run copies it into the guest's tests/ (running it as
// a test fails that step, which does not matter here), and the test times
// it too. BENCHMARKS.md, "Four boots per flavour: the counter sample's
// cost", has the numbers.
package scancost
