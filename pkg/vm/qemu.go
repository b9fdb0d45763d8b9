package vm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// QEMUBinary is the emulator nfslab runs.
const QEMUBinary = "qemu-system-x86_64"

// ShareTag is the 9p mount tag of the host share inside the guest.
const ShareTag = "nfslab"

// Accel is an accelerator together with the CPU model that works with it.
type Accel struct {
	Name string // "kvm" or "tcg"
	CPU  string // "-cpu" value
	// Opts are the accelerator's options ("thread=single"), appended to
	// its name in -accel.
	Opts string
}

func (a Accel) String() string {
	if a.Opts != "" {
		return a.Name + " (-cpu " + a.CPU + ", " + a.Opts + ")"
	}
	return a.Name + " (-cpu " + a.CPU + ")"
}

// arg is the -accel value.
//
// Equivalent to: qemu-system-x86_64 -accel tcg,thread=single
func (a Accel) arg() string {
	if a.Opts != "" {
		return a.Name + "," + a.Opts
	}
	return a.Name
}

// tcgOneThread runs every vCPU of a TCG guest in one host thread. With a
// thread per vCPU (qemu 7.2's default), a vCPU that translates code while
// another one patches it can decode a mix of old and new bytes, where a
// real CPU sees an aligned 4-byte store whole. OpenJDK 21 patches a jump
// over a compiled method's entry when a better version replaces it, and
// in the trixie guest the probe's JVM died with SIGILL two bytes into such
// a jump (hs_err: "J c1 java.nio.Buffer.position", jmp at +0x20, pc at
// +0x22) in 3 of 4 runs of nfs-server-restart's replay, and with SIGILL or
// SIGSEGV at +0x20..+0x24 of C1 methods in 5 of 48 short JVM runs beside
// a second guest (bench/jitcrash, with -XX:UseAVX=0). In one thread no
// translation can overlap a store: 0 of 28. The scenarios wait on their
// timelines, so they took as long as before (docs/vm.md, "JIT crashes
// under TCG").
const tcgOneThread = "thread=single"

// accelCandidates are tried in order by ChooseAccel in "auto" mode. Some
// nested hosts reject the IA32_ARCH_CAPABILITIES MSR that `-cpu max` sets
// under KVM (qemu aborts with "failed to set MSR 0x10a"); dropping that one
// feature keeps KVM usable. TCG always works, slowly. Every candidate keeps
// SSE4.2: without it the JVM has no CRC32C stub and a bad mapped page gives
// InternalError instead of the SIGBUS crash the lab must show.
var accelCandidates = []Accel{
	{Name: "kvm", CPU: "max"},
	{Name: "kvm", CPU: "max,-arch-capabilities"},
	{Name: "tcg", CPU: "max", Opts: tcgOneThread},
}

// Prober starts qemu with the given arguments and reports whether want
// appeared on its serial console (stdout) within d. It always ends the qemu
// it started, and returns what qemu printed for the diagnosis.
type Prober interface {
	Prints(ctx context.Context, args []string, want string, d time.Duration) (bool, string, error)
}

// probeWant is the kernel's first console line. On this kind of nested host
// KVM either aborts at the first vCPU reset or hangs before the kernel runs,
// so "the kernel printed its banner" is the test that tells.
const probeWant = "Linux version"

// KVMAvailable reports whether /dev/kvm can be opened read-write.
type KVMAvailable func() bool

// ChooseAccel picks the accelerator for mode ("auto", "kvm", "tcg"). Each
// KVM candidate gets a trial boot of kernel (no disk, no init) that must
// print the kernel banner within trial; under working KVM that takes about
// a second.
func ChooseAccel(ctx context.Context, mode, kernel string, kvmOK KVMAvailable, p Prober, trial time.Duration) (Accel, []string, error) {
	var notes []string
	switch mode {
	case "tcg":
		return accelCandidates[len(accelCandidates)-1], nil, nil
	case "kvm", "auto":
	default:
		return Accel{}, nil, fmt.Errorf("%w: accel %q is not one of auto, kvm, tcg", ErrInvalid, mode)
	}
	if !kvmOK() {
		notes = append(notes, "/dev/kvm cannot be opened read-write")
	} else {
		for _, c := range accelCandidates {
			if c.Name != "kvm" {
				continue
			}
			ok, out, err := p.Prints(ctx, probeArgs(c, kernel), probeWant, trial)
			if err != nil {
				return Accel{}, notes, fmt.Errorf("probing %s: %w", c, err)
			}
			if ok {
				return c, notes, nil
			}
			notes = append(notes, fmt.Sprintf("%s: no kernel banner within %s: %s", c, trial, lastLine(out)))
		}
	}
	if mode == "kvm" {
		return Accel{}, notes, fmt.Errorf("kvm requested but unusable: %s", strings.Join(notes, "; "))
	}
	return accelCandidates[len(accelCandidates)-1], notes, nil
}

// probeArgs boots the kernel with nothing else: it prints its banner, finds
// no root and panics, and panic=-1 with -no-reboot ends qemu.
func probeArgs(a Accel, kernel string) []string {
	return []string{"-accel", a.arg(), "-cpu", a.CPU, "-m", "256", "-nodefaults", "-no-user-config",
		"-no-reboot", "-display", "none", "-serial", "stdio", "-monitor", "none", "-nic", "none",
		"-kernel", kernel, "-append", "console=ttyS0 panic=-1"}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !strings.Contains(l, "Aborted") {
			return l
		}
	}
	return "no output (killed)"
}

// Machine is one boot of the lab VM.
type Machine struct {
	Kernel, Initrd string
	Disk           string // qcow2 overlay over the base image
	Share          string // host directory exported over 9p as ShareTag
	Accel          Accel
	Boot           BootConfig
	// Interactive attaches the serial console to the terminal (vm shell);
	// otherwise the console goes to stdout for logging.
	Interactive bool
	// Cmdline is appended to the kernel command line (nfslab.mode=...).
	Cmdline []string
}

// KernelCmdline is the guest kernel's command line. The guest init is
// nfslab's own script (no systemd), panic=-1 with -no-reboot turns an init
// that dies into a qemu exit instead of a hang. softlockup_panic turns a
// CPU stuck in the kernel for 2×watchdog_thresh seconds into a panic with
// its stack on the console (at loglevel 4 a soft lockup report shows only
// its first line) and a qemu exit, which vm run boots again after; the
// threshold is three times the default so that a TCG vCPU the host did
// not schedule for a while is not taken for one.
func (m Machine) KernelCmdline() string {
	parts := []string{"root=/dev/vda", "rw", "rootfstype=ext4", "console=ttyS0", "init=/nfslab/init",
		"panic=-1", "softlockup_panic=1", "watchdog_thresh=30", "loglevel=4", "mitigations=off", "nfsd.nfs4_disable_idmapping=1"}
	parts = append(parts, m.Cmdline...)
	return strings.Join(parts, " ")
}

// Args is qemu's argument list for the machine.
func (m Machine) Args() []string {
	args := []string{
		"-accel", m.Accel.arg(),
		"-cpu", m.Accel.CPU,
		"-machine", "q35",
		"-m", strconv.Itoa(m.Boot.MemoryMB),
		"-smp", strconv.Itoa(m.Boot.CPUs),
		"-nodefaults", "-no-user-config", "-no-reboot",
		"-display", "none",
		"-nic", "none",
		"-kernel", m.Kernel,
	}
	if m.Initrd != "" { // nfslab's own kernels have everything built in
		args = append(args, "-initrd", m.Initrd)
	}
	args = append(args,
		"-append", m.KernelCmdline(),
		// cache=unsafe: the overlay is thrown away after the run.
		"-drive", "file="+m.Disk+",if=virtio,format=qcow2,cache=unsafe,discard=unmap",
		"-virtfs", "local,path="+m.Share+",mount_tag="+ShareTag+",security_model=none,id="+ShareTag,
		"-device", "virtio-rng-pci",
	)
	if m.Interactive {
		args = append(args, "-serial", "mon:stdio")
	} else {
		args = append(args, "-serial", "stdio", "-monitor", "none")
	}
	return args
}
