package mount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
)

// Mounter mounts and unmounts filesystems. Implementations: NewLinux (the
// kernel) and NewFake (in memory, failing like the kernel).
type Mounter interface {
	// Mount mounts source on target. options are mount(8) style elements:
	// VFS flags (ro, nosuid, ...) become mount(2) flags, the rest is the
	// filesystem's data string. Equivalent to:
	// `mount -t FSTYPE -o OPTIONS SOURCE TARGET` (without mount helpers).
	Mount(ctx context.Context, source, target, fstype string, options []string) error
	// Unmount unmounts the topmost mount on target: a plain unmount, then
	// MNT_FORCE, then MNT_DETACH, each attempt bounded, the whole call
	// returning within opts.Timeout even when a syscall hangs. The result
	// says which step worked and whether the mount was left lazily detached.
	Unmount(ctx context.Context, target string, opts UnmountOptions) (UnmountResult, error)
	// IsMounted reports whether something is mounted on target, from
	// mountinfo only (no stat of target, which may hang).
	IsMounted(target string) (bool, error)
	// List returns the mount table from /proc/self/mountinfo.
	List() ([]MountPoint, error)
}

// DefaultUnmountTimeout bounds an Unmount call when no timeout is given.
const DefaultUnmountTimeout = 10 * time.Second

// DefaultMountTimeout bounds a Mount call whose context has no deadline. A
// soft NFS mount of an unreachable server otherwise retries for minutes.
const DefaultMountTimeout = 60 * time.Second

// UnmountOptions tune Unmount.
type UnmountOptions struct {
	// Timeout bounds the whole call; 0 means DefaultUnmountTimeout. It is
	// split 2/5 plain, 2/5 MNT_FORCE, 1/5 MNT_DETACH.
	Timeout time.Duration
}

// Unmount steps, in the order they are tried.
const (
	StepUnmount = "unmount" // umount2(target, 0)
	StepForce   = "force"   // umount2(target, MNT_FORCE): aborts NFS RPCs / the FUSE connection
	StepDetach  = "detach"  // umount2(target, MNT_DETACH): lazy, gone from the namespace at once
)

// Attempt is one umount2 call.
type Attempt struct {
	Step string
	Err  error // nil on success; wraps ErrTimeout if the syscall hung
	Took time.Duration
}

// UnmountResult reports how an Unmount went.
type UnmountResult struct {
	Target   string
	Method   string // the step that unmounted, "" if none did
	Attempts []Attempt
	// Detached is true when the mount was lazily detached: it is gone from
	// the mount table, but processes that still use it keep it alive in
	// the kernel until they let go.
	Detached bool
	// Hung is true when an attempt's syscall did not return in time; its
	// goroutine stays blocked in the kernel.
	Hung bool
}

func (r UnmountResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ", r.Target)
	for i, a := range r.Attempts {
		if i > 0 {
			b.WriteString(", ")
		}
		if a.Err == nil {
			fmt.Fprintf(&b, "%s ok (%s)", a.Step, a.Took.Round(time.Millisecond))
		} else {
			fmt.Fprintf(&b, "%s failed (%v)", a.Step, a.Err)
		}
	}
	if r.Detached {
		b.WriteString("; left lazily detached")
	}
	return b.String()
}

// Linux unmount flags (the umount2(2) ABI), kept here so that the
// portable fallback logic and the fake share them.
const (
	flagForce  = 0x1 // MNT_FORCE
	flagDetach = 0x2 // MNT_DETACH
)

// kernel is the narrow syscall surface the Mounter logic runs on.
type kernel interface {
	mount(source, target, fstype string, options []string) error
	unmount(target string, flags int) error
	mountInfo() (io.ReadCloser, error)
}

// kernelMounter implements Mounter over a kernel.
type kernelMounter struct {
	k            kernel
	clk          clock.Clock
	mountTimeout time.Duration
}

func (m *kernelMounter) Mount(ctx context.Context, source, target, fstype string, options []string) error {
	if !filepath.IsAbs(target) {
		return fmt.Errorf("mounting %s: target %q is not an absolute path", source, target)
	}
	target = filepath.Clean(target)
	d := m.mountTimeout
	if d == 0 {
		d = DefaultMountTimeout
	}
	if _, ok := ctx.Deadline(); ok {
		d = 0 // the context bounds it
	}
	err := withTimeout(ctx, m.clk, d, func() error { return m.k.mount(source, target, fstype, options) })
	if err != nil {
		if errors.Is(err, ErrTimeout) {
			return fmt.Errorf("mounting %s on %s (%s): %w; the mount may still complete later, check `nfslab umount %s`", source, target, fstype, err, target)
		}
		return fmt.Errorf("mounting %s on %s (%s, -o %s): %w", source, target, fstype, strings.Join(options, ","), err)
	}
	return nil
}

func (m *kernelMounter) Unmount(ctx context.Context, target string, opts UnmountOptions) (UnmountResult, error) {
	target = filepath.Clean(target)
	res := UnmountResult{Target: target}
	total := opts.Timeout
	if total <= 0 {
		total = DefaultUnmountTimeout
	}
	// Each step ends at its own deadline, so time a step did not use (a
	// busy mount answers EBUSY at once) goes to the next one: in the lab
	// VM, MNT_DETACH of a cut-off NFS mount blocks for the soft timeout
	// while the kernel revalidates the mount's root during the path
	// lookup, longer than a fixed fifth of the budget.
	begin := m.clk.Now()
	deadline := map[string]time.Time{
		StepUnmount: begin.Add(total * 2 / 5),
		StepForce:   begin.Add(total * 4 / 5),
		StepDetach:  begin.Add(total),
	}
	try := func(step string, flags int) error {
		start := m.clk.Now()
		d := deadline[step].Sub(start)
		if d <= 0 {
			d = time.Millisecond // spent: still try once, without waiting
		}
		err := withTimeout(ctx, m.clk, d, func() error { return m.k.unmount(target, flags) })
		if errors.Is(err, ErrTimeout) {
			res.Hung = true
		}
		res.Attempts = append(res.Attempts, Attempt{Step: step, Err: err, Took: m.clk.Now().Sub(start)})
		return err
	}
	// goneNow covers a hung earlier attempt that completed while a later
	// one ran: the later one then sees EINVAL although all is well.
	goneNow := func(err error) bool {
		if !errors.Is(err, syscall.EINVAL) {
			return false
		}
		mounted, lerr := m.IsMounted(target)
		return lerr == nil && !mounted
	}
	err := try(StepUnmount, 0)
	if err == nil {
		res.Method = StepUnmount
		return res, nil
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
		return res, fmt.Errorf("unmounting %s: not mounted: %w", target, err)
	}
	for _, s := range []struct {
		step  string
		flags int
	}{{StepForce, flagForce}, {StepDetach, flagDetach}} {
		if ctx.Err() != nil {
			break
		}
		err = try(s.step, s.flags)
		if err == nil || goneNow(err) {
			res.Method = s.step
			res.Detached = s.step == StepDetach
			return res, nil
		}
	}
	return res, fmt.Errorf("unmounting %s failed after %d attempts: %s", target, len(res.Attempts), res)
}

func (m *kernelMounter) List() ([]MountPoint, error) {
	rc, err := m.k.mountInfo()
	if err != nil {
		return nil, fmt.Errorf("reading mount table: %w", err)
	}
	defer rc.Close()
	return ParseMountInfo(rc)
}

func (m *kernelMounter) IsMounted(target string) (bool, error) {
	mps, err := m.List()
	if err != nil {
		return false, err
	}
	target = filepath.Clean(target)
	for _, mp := range mps {
		if mp.Path == target {
			return true, nil
		}
	}
	return false, nil
}
