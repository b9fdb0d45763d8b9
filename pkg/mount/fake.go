package mount

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/nfslab/nfslab/pkg/clock"
)

// Fake is an in-memory Mounter that fails like the kernel: mounting on a
// missing directory is ENOENT, unmounting something not mounted is EINVAL,
// unmounting a busy mount (SetBusy, or one with mounts below it) is EBUSY
// unless detached, and a mount made to Hang blocks plain and forced
// unmounts like a syscall stuck on a dead server. Unmount runs the same
// fallback logic as the Linux Mounter.
type Fake struct {
	kernelMounter
	k *fakeKernel
}

// NewFake returns an empty fake mount table on the real clock.
func NewFake() *Fake { return NewFakeWithClock(clock.Real{}) }

// NewFakeWithClock returns an empty fake mount table on clk.
func NewFakeWithClock(clk clock.Clock) *Fake {
	k := &fakeKernel{dirs: map[string]bool{}, busy: map[string]bool{}, hang: map[string]chan struct{}{}, nextID: 100}
	return &Fake{kernelMounter: kernelMounter{k: k, clk: clk}, k: k}
}

// AddDir makes directories exist, so that they can be mounted on.
func (f *Fake) AddDir(paths ...string) {
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	for _, p := range paths {
		f.k.dirs[filepath.Clean(p)] = true
	}
}

// SetBusy marks target as in use (an open file, a cwd): a plain or forced
// unmount gets EBUSY, a detach succeeds.
func (f *Fake) SetBusy(target string, busy bool) {
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	f.k.busy[filepath.Clean(target)] = busy
}

// Hang makes plain and forced unmounts of target block until release is
// called, as umount2 does on a dead NFS server. MNT_DETACH never blocks.
func (f *Fake) Hang(target string) (release func()) {
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	ch := make(chan struct{})
	f.k.hang[filepath.Clean(target)] = ch
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// Calls returns the syscalls made so far, e.g.
// "mount 10.0.0.1:/ /run/nfslab/mnt/a nfs4 soft,timeo=10" or
// "umount2 /run/nfslab/mnt/a MNT_FORCE".
func (f *Fake) Calls() []string {
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	return append([]string(nil), f.k.calls...)
}

type fakeKernel struct {
	mu     sync.Mutex
	mounts []MountPoint
	dirs   map[string]bool
	busy   map[string]bool
	hang   map[string]chan struct{}
	calls  []string
	nextID int
}

func (k *fakeKernel) mount(source, target, fstype string, options []string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, fmt.Sprintf("mount %s %s %s %s", source, target, fstype, strings.Join(options, ",")))
	if !k.dirs[target] && k.top(target) < 0 {
		return syscall.ENOENT
	}
	k.nextID++
	super := strings.Join(options, ",")
	if super == "" {
		super = "rw" // the kernel always prints at least rw/ro
	}
	k.mounts = append(k.mounts, MountPoint{
		ID: k.nextID, ParentID: 1, Dev: fmt.Sprintf("0:%d", k.nextID), Root: "/", Path: target, Options: "rw,relatime",
		FSType: fstype, Source: source, SuperOptions: super,
	})
	return nil
}

func (k *fakeKernel) top(target string) int {
	for i := len(k.mounts) - 1; i >= 0; i-- {
		if k.mounts[i].Path == target {
			return i
		}
	}
	return -1
}

func (k *fakeKernel) unmount(target string, flags int) error {
	name := map[int]string{0: "0", flagForce: "MNT_FORCE", flagDetach: "MNT_DETACH"}[flags]
	k.mu.Lock()
	k.calls = append(k.calls, fmt.Sprintf("umount2 %s %s", target, name))
	ch := k.hang[target]
	k.mu.Unlock()
	if ch != nil && flags&flagDetach == 0 {
		<-ch
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	i := k.top(target)
	if i < 0 {
		if k.dirs[target] {
			return syscall.EINVAL
		}
		return syscall.ENOENT
	}
	if flags&flagDetach != 0 {
		// Lazy: this mount and everything below it leave the namespace.
		kept := k.mounts[:0]
		for j, mp := range k.mounts {
			if j == i || (j > i && Within(target, mp.Path)) {
				continue
			}
			kept = append(kept, mp)
		}
		k.mounts = kept
		return nil
	}
	if k.busy[target] {
		return syscall.EBUSY
	}
	for j := i + 1; j < len(k.mounts); j++ {
		if Within(target, k.mounts[j].Path) {
			return syscall.EBUSY // a submount pins it
		}
	}
	k.mounts = append(k.mounts[:i], k.mounts[i+1:]...)
	return nil
}

func (k *fakeKernel) mountInfo() (io.ReadCloser, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var b bytes.Buffer
	for _, mp := range k.mounts {
		fmt.Fprintf(&b, "%d %d %s %s %s %s - %s %s %s\n", mp.ID, mp.ParentID, mp.Dev, escape(mp.Root), escape(mp.Path),
			mp.Options, escape(mp.FSType), escape(mp.Source), mp.SuperOptions)
	}
	return io.NopCloser(&b), nil
}

// escape applies the kernel's mountinfo escaping (the inverse of unescapeOctal).
func escape(s string) string {
	r := strings.NewReplacer(`\`, `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`)
	return r.Replace(s)
}
