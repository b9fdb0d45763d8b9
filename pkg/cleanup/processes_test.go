package cleanup

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/mount"
)

// fakeProcs is a process table (pid -> start time) that journals kills;
// SIGKILL of a known pid or group removes it, of an unknown one is ESRCH.
type fakeProcs struct {
	j     *journal
	start map[int]uint64
}

func (f *fakeProcs) StartTime(pid int) (uint64, error) {
	st, ok := f.start[pid]
	if !ok {
		return 0, fmt.Errorf("pid %d: %w", pid, proctrack.ErrGone)
	}
	return st, nil
}

func (f *fakeProcs) Kill(pid int, _ syscall.Signal) error {
	f.j.add("kill %d", pid)
	if pid < 0 {
		pid = -pid
	}
	if _, ok := f.start[pid]; !ok {
		return syscall.ESRCH
	}
	delete(f.start, pid)
	return nil
}

// crashWorld is what a SIGKILLed `nfslab run` leaves: its faultfs mount
// (recorded, outside the faultfs root here to show records are read), its
// JVM (recorded), and a stranger who got a recorded PID.
type crashWorld struct {
	j      *journal
	procs  *fakeProcs
	mnt    *mount.Fake
	opts   Options
	mp     string
	owner  proctrack.Ident
	jvm    proctrack.Ident
	reused proctrack.Ident
}

func newCrashWorld(t *testing.T, ownerAlive bool) *crashWorld {
	t.Helper()
	base := t.TempDir()
	w := &crashWorld{j: &journal{}, mnt: mount.NewFake(), mp: filepath.Join(base, "elsewhere", "run-1"),
		owner: proctrack.Ident{PID: 10, Start: 1}, jvm: proctrack.Ident{PID: 100, Start: 50},
		reused: proctrack.Ident{PID: 200, Start: 60}}
	w.procs = &fakeProcs{j: w.j, start: map[int]uint64{100: 50, 200: 999}}
	if ownerAlive {
		w.procs.start[10] = 1
	}
	rec := &proctrack.Store{Dir: filepath.Join(base, "proc"), Procs: w.procs}
	for _, r := range []proctrack.Record{
		{Kind: proctrack.KindMount, Name: "faultfs", Owner: w.owner, Path: w.mp},
		{Kind: proctrack.KindProcess, Name: "probe", Owner: w.owner, Proc: w.jvm},
		{Kind: proctrack.KindProcess, Name: "probe", Owner: w.owner, Proc: w.reused},
	} {
		if _, err := rec.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	w.mnt.AddDir(w.mp)
	if err := w.mnt.Mount(context.Background(), "/backing", w.mp, "fuse.nfslab-faultfs", nil); err != nil {
		t.Fatal(err)
	}
	w.opts = Options{
		FaultfsRoot: filepath.Join(base, "faultfs"),
		Records:     rec,
		Mounter:     recMounter{w.mnt, w.j},
		AbortFuse: func(_ context.Context, dev string) error {
			w.j.add("abort %s", dev)
			return nil
		},
		ProcessWait: time.Second,
	}
	return w
}

// TestSweepCrashedRunAbortsKillsUnmounts: the FUSE connection of a mount
// whose server is gone is aborted first (so a JVM thread stuck in it
// returns), then the JVM is killed (never the stranger with a reused PID),
// then the mount goes, and with it every record.
func TestSweepCrashedRunAbortsKillsUnmounts(t *testing.T) {
	w := newCrashWorld(t, false)
	rep, err := Sweep(context.Background(), w.opts)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	// 0:101: the fake names its first mount so.
	want := []string{"abort 0:101", "kill -100", "kill 100", "unmount " + w.mp}
	if got := w.j.list(); !reflect.DeepEqual(got, want) {
		t.Fatalf("side effects:\n got %q\nwant %q", got, want)
	}
	if got := rep.Step(StepProcesses).Removed; !reflect.DeepEqual(got, []string{"probe pid 100"}) {
		t.Errorf("processes removed %q", got)
	}
	if got := rep.Step(StepFaultfs).Removed; !reflect.DeepEqual(got, []string{w.mp}) {
		t.Errorf("faultfs removed %q", got)
	}
	if _, ok := w.procs.start[200]; !ok {
		t.Error("the process that reused a recorded PID was killed")
	}
	if es, _ := w.opts.Records.List(); len(es) != 0 {
		t.Errorf("records left: %+v", es)
	}
	// Not found is done.
	rep, err = Sweep(context.Background(), w.opts)
	if err != nil || rep.Removed() != 0 {
		t.Errorf("second sweep removed %d, err %v", rep.Removed(), err)
	}
}

// TestSweepKeepsALiveRun: the daemon's start-up (KeepLiveOwners) leaves a
// running nfslab's mount and JVM alone and aborts nothing.
func TestSweepKeepsALiveRun(t *testing.T) {
	w := newCrashWorld(t, true)
	w.opts.KeepLiveOwners = true
	rep, err := Sweep(context.Background(), w.opts)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if got := w.j.list(); len(got) != 0 {
		t.Fatalf("side effects on a live run: %q", got)
	}
	if k := rep.Step(StepFaultfs).Kept; len(k) != 1 || !strings.Contains(k[0], "still runs") {
		t.Errorf("faultfs kept %q", k)
	}
	if k := rep.Step(StepProcesses).Kept; len(k) != 1 || !strings.Contains(k[0], "probe pid 100") {
		t.Errorf("processes kept %q", k)
	}
	// heal --all (no KeepLiveOwners) removes them, but a served mount's
	// connection is not aborted: its server is alive and answers.
	w.opts.KeepLiveOwners = false
	if _, err := Sweep(context.Background(), w.opts); err != nil {
		t.Fatal(err)
	}
	for _, c := range w.j.list() {
		if strings.HasPrefix(c, "abort") {
			t.Errorf("aborted the connection of a live server: %q", w.j.list())
		}
	}
}

// TestSweepIgnoresUnrecordedFuseElsewhere: a FUSE mount outside the root
// that no record names is not nfslab's (another test's, a user's).
func TestSweepIgnoresUnrecordedFuseElsewhere(t *testing.T) {
	w := newCrashWorld(t, false)
	other := filepath.Join(filepath.Dir(w.mp), "someone-elses")
	w.mnt.AddDir(other)
	if err := w.mnt.Mount(context.Background(), "/x", other, "fuse.nfslab-faultfs", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Sweep(context.Background(), w.opts); err != nil {
		t.Fatal(err)
	}
	if ok, _ := w.mnt.IsMounted(other); !ok {
		t.Error("an unrecorded FUSE mount outside the root was unmounted")
	}
	if got := w.j.list(); len(got) != 4 {
		t.Errorf("side effects %q, want only the recorded run's four", got)
	}
}

// TestFuseCtlMountsFusectlAndAborts: the real aborter over a fake mount
// table and a directory standing for fusectl.
func TestFuseCtlMountsFusectlAndAborts(t *testing.T) {
	dir := t.TempDir()
	m := mount.NewFake()
	m.AddDir(dir)
	ab := FuseCtl(m, dir)
	if err := ab(context.Background(), "8:1"); err == nil || !strings.Contains(err.Error(), "not a FUSE connection") {
		t.Fatalf("a block device passed: %v", err)
	}
	// No connection directory: the connection is gone, which is done.
	if err := ab(context.Background(), "0:53"); err != nil {
		t.Fatal(err)
	}
	if c := m.Calls(); len(c) != 1 || !strings.HasPrefix(c[0], "mount fusectl "+dir+" fusectl") {
		t.Fatalf("calls %q, want fusectl mounted once", c)
	}
	if err := ab(context.Background(), "0:53"); err != nil {
		t.Fatal(err)
	}
	if c := m.Calls(); len(c) != 1 {
		t.Fatalf("fusectl mounted again: %q", c)
	}
}

// TestSweepKilledPodmanServiceLeavesNoStorageMount: a podman service a
// killed run started outlives it; the sweep ends it and then removes the
// mounts its storage made after it started (the overlay driver's private
// bind mount), as the service's own Stop would have, but none that was
// there before it started, and none of a service whose nfslab still runs.
func TestSweepKilledPodmanServiceLeavesNoStorageMount(t *testing.T) {
	for _, ownerAlive := range []bool{false, true} {
		t.Run(fmt.Sprintf("owner alive %v", ownerAlive), func(t *testing.T) {
			w := newCrashWorld(t, ownerAlive)
			storage := filepath.Join(t.TempDir(), "storage")
			overlay, old := filepath.Join(storage, "overlay"), filepath.Join(storage, "old")
			for _, mp := range []string{overlay, old} {
				w.mnt.AddDir(mp)
				if err := w.mnt.Mount(context.Background(), mp, mp, "none", []string{"bind"}); err != nil {
					t.Fatal(err)
				}
			}
			svc := proctrack.Ident{PID: 300, Start: 70}
			w.procs.start[300] = 70
			if _, err := w.opts.Records.Put(proctrack.Record{Kind: proctrack.KindProcess, Name: "podman-service", Owner: w.owner, Proc: svc,
				Mounts: &proctrack.MountScope{Roots: []string{storage}, Before: []string{old}}}); err != nil {
				t.Fatal(err)
			}
			w.opts.KeepLiveOwners = true
			rep, err := Sweep(context.Background(), w.opts)
			if err != nil {
				t.Fatalf("Sweep: %v", err)
			}
			mounted := func(p string) bool { ok, _ := w.mnt.IsMounted(p); return ok }
			if ownerAlive {
				if !mounted(overlay) || !mounted(old) {
					t.Error("unmounted the storage of a service whose nfslab runs")
				}
				return
			}
			if mounted(overlay) || !mounted(old) {
				t.Errorf("overlay mounted %v (want false), the earlier mount %v (want true)", mounted(overlay), mounted(old))
			}
			got := rep.Step(StepProcesses).Removed
			if !slices.Contains(got, "podman-service pid 300") || !slices.Contains(got, "mount "+overlay+" left by podman-service pid 300") {
				t.Errorf("processes removed %q", got)
			}
			j := w.j.list()
			if k, u := slices.Index(j, "kill 300"), slices.Index(j, "unmount "+overlay); k < 0 || u < k {
				t.Errorf("want the service killed, then its mount unmounted: %q", j)
			}
		})
	}
}
