// Package jitcrash counts JVM crashes in ordinary JIT-compiled code under
// qemu's TCG emulation: the journal probe, as nfslab runs it, started over
// and over (two at a time, appending 15 s then replaying, on the guest's
// own disk: no NFS, no fault), and every hs_err file's first lines
// printed. It is a guest test, built with its own tag so no other run
// picks it up:
//
//	TAGS='remote containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper'
//	CGO_ENABLED=0 go build -tags "$TAGS" -o bin/nfslab ./cmd/nfslab
//	CGO_ENABLED=0 go test -tags jitguest -c -o bin/jitcrash.test ./bench/jitcrash
//	sudo bin/nfslab vm run --guest trixie --tests-only --test-binary 'bin/jitcrash.test=^TestJITCrashes$' --out /tmp/jit
//
// `^TestJITCrashesC1$` runs the JVMs with -XX:TieredStopAtLevel=1. nfslab
// runs TCG with all vCPUs in one host thread (-accel tcg,thread=single);
// multi/qemu-system-x86_64 is a wrapper that gives qemu 7.2's default, a
// thread per vCPU, to a vm run that finds it first on PATH:
//
//	sudo env PATH="$PWD/bench/jitcrash/multi:$PATH" bin/nfslab vm run --guest trixie --tests-only --test-binary 'bin/jitcrash.test=^TestJITCrashes$' --out /tmp/jit-multi
//
// A crash is rare on an idle host: boot a second guest beside it (another
// vm run) to see them. BENCHMARKS.md, "JIT crashes under TCG", has the
// counts.
package jitcrash
