package cleanup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/mount"
)

// journal records the side effects of every fake, in order.
type journal struct {
	mu    sync.Mutex
	calls []string
}

func (j *journal) add(format string, a ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.calls = append(j.calls, fmt.Sprintf(format, a...))
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.calls)
}

// fakeFaults heals per namespace; err fails one namespace.
type fakeFaults struct {
	j     *journal
	ids   map[string][]string
	errNS string
}

func (f *fakeFaults) HealAll(_ context.Context, ns string) ([]string, error) {
	f.j.add("heal-all %q", ns)
	if f.errNS != "" && ns == f.errNS {
		return nil, errors.New("iptables: exit status 4")
	}
	ids := f.ids[ns]
	delete(f.ids, ns) // a second sweep finds nothing: not found is done
	return ids, nil
}

// recMounter wraps mount.Fake to journal unmounts.
type recMounter struct {
	*mount.Fake
	j *journal
}

func (m recMounter) Unmount(ctx context.Context, target string, o mount.UnmountOptions) (mount.UnmountResult, error) {
	m.j.add("unmount %s", target)
	return m.Fake.Unmount(ctx, target, o)
}

type world struct {
	j                              *journal
	faults                         *fakeFaults
	ctr                            *container.Fake
	mnt                            *mount.Fake
	netnsDir, ffsRoot, mntRoot, nd string
	exportRoot                     string
	foreignMount, foreignCtr       string
	opts                           Options
	devicesLeft                    bool
}

// newWorld builds one of each nfslab object and a foreign twin of each
// kind that Sweep must leave alone.
func newWorld(t *testing.T) *world {
	t.Helper()
	base := t.TempDir()
	w := &world{j: &journal{}, mnt: mount.NewFake()}
	w.faults = &fakeFaults{j: w.j, ids: map[string][]string{"": {"a1"}, "lab": {"b2", "c3"}}}
	w.ctr = container.NewFake(func() time.Time { return time.Unix(1000, 0) })
	w.ctr.AddImage("docker.io/library/busybox:latest")
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"nfslab-nfs", container.OwnedLabels("r1", "nfs-server", nil)},
		{"nfslab-zeebe", container.OwnedLabels("r1", container.RoleZeebe, nil)},
	} {
		if _, err := w.ctr.Create(ctx, container.Spec{Name: c.name, Image: "docker.io/library/busybox:latest", Labels: c.labels}); err != nil {
			t.Fatal(err)
		}
		if err := w.ctr.Start(ctx, c.name); err != nil {
			t.Fatal(err)
		}
	}
	w.foreignCtr = "someone-elses"
	w.netnsDir = filepath.Join(base, "netns")
	w.ffsRoot = filepath.Join(base, "faultfs")
	w.mntRoot = filepath.Join(base, "mnt")
	w.nd = filepath.Join(base, "nfsd")
	// The exports a SIGKILLed run leaves: its container server's (run r1,
	// with a file in it) and a netns server's that lost its state
	// directory, its size-bounded tmpfs still mounted.
	w.exportRoot = filepath.Join(base, "export")
	for _, d := range []string{filepath.Join(w.nd, "nfslab-nfsd"), filepath.Join(w.ffsRoot, "dead"), w.mntRoot,
		filepath.Join(w.exportRoot, "r1", "journal"), filepath.Join(w.exportRoot, "nfslab-lost")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A stale control socket: a file nobody listens on.
	if err := os.WriteFile(filepath.Join(w.ffsRoot, "dead.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w.foreignMount = filepath.Join(base, "elsewhere")
	zeebe := filepath.Join(w.mntRoot, "zeebe")
	if err := os.WriteFile(filepath.Join(w.exportRoot, "r1", "journal", "segment-0"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	lost := filepath.Join(w.exportRoot, "nfslab-lost")
	w.mnt.AddDir(w.ffsRoot+"/dead", zeebe, zeebe+"/sub", w.foreignMount, lost)
	for _, m := range [][2]string{{"faultfs", w.ffsRoot + "/dead"}, {"10.213.0.2:/", zeebe}, {"tmpfs", zeebe + "/sub"}, {"tmpfs", w.foreignMount}, {"nfslab-export", lost}} {
		if err := w.mnt.Mount(ctx, m[0], m[1], "tmpfs", nil); err != nil {
			t.Fatal(err)
		}
	}
	w.opts = Options{
		Faults:     w.faults,
		Namespaces: []string{"", "lab"},
		Podman: func(context.Context) (container.Runtime, error) {
			w.j.add("podman connect")
			return journaledRuntime{w.ctr, w.j}, nil
		},
		NetnsDir: w.netnsDir,
		Detach: func(dir string) ([]string, error) {
			w.j.add("detach %s", dir)
			return []string{"nfslab-ctr-nfslab-zeebe"}, nil
		},
		FaultfsRoot: w.ffsRoot,
		MountRoot:   w.mntRoot,
		Mounter:     recMounter{w.mnt, w.j},
		NFSDRoot:    w.nd,
		ExportRoot:  w.exportRoot,
		Servers: func(_ context.Context, name, dir string) error {
			w.j.add("stop-server %s %s", name, dir)
			return os.RemoveAll(dir)
		},
		Devices: func(_ context.Context, root string) ([]string, error) {
			w.j.add("remove-devices %s", root)
			if w.devicesLeft {
				w.devicesLeft = false
				return []string{"dm nfslab-x-export", "loop /dev/loop3 (" + root + "/x/export.img)"}, nil
			}
			return nil, nil
		},
	}
	w.devicesLeft = true
	return w
}

// journaledRuntime journals container removals.
type journaledRuntime struct {
	*container.Fake
	j *journal
}

// List also answers a stranger's container, as a runtime that ignored the
// label filter would: Sweep must still leave it alone.
func (r journaledRuntime) List(ctx context.Context, labels map[string]string) ([]container.Info, error) {
	out, err := r.Fake.List(ctx, labels)
	return append(out, container.Info{ID: "f00", Name: "someone-elses", State: container.StateRunning,
		Labels: map[string]string{"app": "db"}}), err
}

func (r journaledRuntime) Remove(ctx context.Context, name string, o container.RemoveOptions) error {
	in, err := r.Fake.Inspect(ctx, name)
	if err == nil {
		name = in.Name
	}
	r.j.add("remove-container %s", name)
	return r.Fake.Remove(ctx, name, o)
}

func TestSweepOrderAndOwnership(t *testing.T) {
	w := newWorld(t)
	rep, err := Sweep(context.Background(), w.opts)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	want := []string{
		`heal-all ""`, `heal-all "lab"`,
		"podman connect", "remove-container nfslab-zeebe", "remove-container nfslab-nfs", // newest first
		"detach " + w.netnsDir,
		"unmount " + w.ffsRoot + "/dead",
		"unmount " + w.mntRoot + "/zeebe/sub", "unmount " + w.mntRoot + "/zeebe", // deepest first
		"stop-server nfslab-nfsd " + filepath.Join(w.nd, "nfslab-nfsd"),
		"unmount " + w.exportRoot + "/nfslab-lost", // after the servers and containers: exports are out of use
		"remove-devices " + w.nd,                   // after the servers and exports unmounted theirs
	}
	if got := w.j.list(); !reflect.DeepEqual(got, want) {
		t.Fatalf("side effects:\n got %q\nwant %q", got, want)
	}
	var names []string
	for _, s := range rep.Steps {
		names = append(names, s.Step)
	}
	if !reflect.DeepEqual(names, Steps) {
		t.Fatalf("report steps %v, want %v", names, Steps)
	}
	if got := rep.Step(StepFaults).Removed; !reflect.DeepEqual(got, []string{"a1", "b2 (netns lab)", "c3 (netns lab)"}) {
		t.Errorf("faults removed %q", got)
	}
	if got := rep.Step(StepContainers).Removed; !reflect.DeepEqual(got, []string{"nfslab-zeebe", "nfslab-nfs"}) {
		t.Errorf("containers removed %q", got)
	}
	if got := rep.Step(StepFaultfs).Removed; !reflect.DeepEqual(got, []string{w.ffsRoot + "/dead", w.ffsRoot + "/dead.sock (stale control socket)"}) {
		t.Errorf("faultfs removed %q", got)
	}
	if got := rep.Step(StepMounts).Removed; len(got) != 2 {
		t.Errorf("mounts removed %q", got)
	}
	if got := rep.Step(StepDevices).Removed; len(got) != 2 {
		t.Errorf("block devices removed %q", got)
	}
	if got := rep.Step(StepExports).Removed; !reflect.DeepEqual(got, []string{w.exportRoot + "/nfslab-lost (unmounted its tmpfs)", w.exportRoot + "/r1"}) {
		t.Errorf("exports removed %q", got)
	}
	if rep.Removed() != 3+2+1+2+2+1+2+2 {
		t.Errorf("Removed() = %d", rep.Removed())
	}
	// Foreign objects are untouched.
	if ok, _ := w.mnt.IsMounted(w.foreignMount); !ok {
		t.Error("the foreign mount was unmounted")
	}
	for _, c := range w.ctr.Calls {
		if strings.HasSuffix(c, w.foreignCtr) {
			t.Errorf("the foreign container was touched: %q", c)
		}
	}
	for _, p := range []string{w.ffsRoot + "/dead", w.mntRoot + "/zeebe", w.nd + "/nfslab-nfsd", w.ffsRoot + "/dead.sock",
		w.exportRoot + "/r1", w.exportRoot + "/nfslab-lost"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}

	// Not found is done: a second sweep removes nothing and fails nothing.
	rep, err = Sweep(context.Background(), w.opts)
	if err != nil {
		t.Fatalf("second Sweep: %v", err)
	}
	if n := rep.Removed(); n != 1 { // the fake detacher always answers one name
		t.Errorf("second sweep removed %d objects: %+v", n, rep)
	}
}

func TestSweepErrorsDoNotStopLaterSteps(t *testing.T) {
	w := newWorld(t)
	w.faults.errNS = "lab"
	w.opts.Podman = func(context.Context) (container.Runtime, error) {
		w.j.add("podman connect")
		return nil, errors.New("podman: 500 internal error")
	}
	w.opts.Servers = func(_ context.Context, name, _ string) error {
		w.j.add("stop-server %s", name)
		return errors.New("ip netns del: Device or resource busy")
	}
	rep, err := Sweep(context.Background(), w.opts)
	if err == nil {
		t.Fatal("Sweep hid the errors")
	}
	for _, s := range []string{"faults: healing faults in namespace lab: iptables: exit status 4",
		"containers: connecting to podman: podman: 500 internal error",
		"nfs-server: stopping NFS server nfslab-nfsd: ip netns del"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	// The host namespace and every later step still ran.
	got := w.j.list()
	for _, c := range []string{`heal-all ""`, "detach " + w.netnsDir, "unmount " + w.mntRoot + "/zeebe", "stop-server nfslab-nfsd"} {
		if !slices.Contains(got, c) {
			t.Errorf("%q did not run after an earlier failure: %q", c, got)
		}
	}
	if rep.Step(StepFaults).Removed[0] != "a1" || rep.Step(StepFaults).Error == "" {
		t.Errorf("faults report %+v", rep.Step(StepFaults))
	}
	if rep.Step(StepMounts).Err != nil || len(rep.Step(StepMounts).Removed) != 2 {
		t.Errorf("mounts report %+v", rep.Step(StepMounts))
	}
}

func TestSweepNoPodmanIsNothingToDo(t *testing.T) {
	w := newWorld(t)
	w.opts.Podman = func(context.Context) (container.Runtime, error) {
		return nil, fmt.Errorf("%w at unix:///run/podman/podman.sock", container.ErrNoService)
	}
	rep, err := Sweep(context.Background(), w.opts)
	if err != nil {
		t.Fatalf("absent podman is an error: %v", err)
	}
	if s := rep.Step(StepContainers); s.Skipped == "" || s.Err != nil {
		t.Errorf("containers step %+v", s)
	}
}

func TestSweepSkipsStepsWithoutRoot(t *testing.T) {
	j := &journal{}
	rep, err := Sweep(context.Background(), Options{
		Detach:  func(string) ([]string, error) { j.add("detach"); return nil, nil },
		Servers: func(context.Context, string, string) error { j.add("stop"); return nil },
		Devices: func(context.Context, string) ([]string, error) { j.add("devices"); return nil, nil },
		Mounter: recMounter{mount.NewFake(), j},
	})
	if err != nil || len(j.list()) != 0 {
		t.Fatalf("empty options touched %q (err %v)", j.list(), err)
	}
	for _, s := range rep.Steps {
		if s.Skipped == "" {
			t.Errorf("step %s ran without a root", s.Step)
		}
	}
}

// TestSweepFaultfsLiveServer: a faultfs whose control socket answers is
// kept with KeepLiveFaultfs (the daemon's start) and unmounted without it
// (heal --all); its socket belongs to the running server either way.
func TestSweepFaultfsLiveServer(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) {
			// Unix socket paths are short: use a short temp dir.
			root, err := os.MkdirTemp("", "nfslt-ffs")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(root) })
			ln, err := net.Listen("unix", filepath.Join(root, "live.sock"))
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			j := &journal{}
			m := mount.NewFake()
			m.AddDir(root + "/live")
			if err := m.Mount(context.Background(), "faultfs", root+"/live", "fuse.faultfs", nil); err != nil {
				t.Fatal(err)
			}
			rep, err := Sweep(context.Background(), Options{FaultfsRoot: root, KeepLiveFaultfs: keep, Mounter: recMounter{m, j}})
			if err != nil {
				t.Fatal(err)
			}
			mounted, _ := m.IsMounted(root + "/live")
			if mounted != keep {
				t.Errorf("mounted after sweep = %v, want %v (calls %q)", mounted, keep, j.list())
			}
			if _, err := os.Stat(filepath.Join(root, "live.sock")); err != nil {
				t.Errorf("the live server's socket was removed: %v", err)
			}
			if len(rep.Step(StepFaultfs).Kept) != 1 {
				t.Errorf("kept %q", rep.Step(StepFaultfs).Kept)
			}
		})
	}
}

// TestSweepFaultfsBusyMountIsDetached: a mount busy for plain and forced
// unmount is lazily detached and reported so.
func TestSweepFaultfsBusyMountIsDetached(t *testing.T) {
	root := t.TempDir()
	m := mount.NewFake()
	m.AddDir(root + "/busy")
	if err := m.Mount(context.Background(), "faultfs", root+"/busy", "fuse.faultfs", nil); err != nil {
		t.Fatal(err)
	}
	m.SetBusy(root+"/busy", true)
	var aborted []string
	abort := func(_ context.Context, dev string) error { aborted = append(aborted, dev); return nil }
	rep, err := Sweep(context.Background(), Options{FaultfsRoot: root, Mounter: m, UnmountTimeout: time.Second, AbortFuse: abort})
	if err != nil {
		t.Fatal(err)
	}
	if len(aborted) != 1 {
		t.Errorf("aborted FUSE connections %q, want the dead mount's", aborted)
	}
	if got := rep.Step(StepFaultfs).Removed; len(got) != 1 || !strings.Contains(got[0], "lazily detached") {
		t.Errorf("removed %q", got)
	}
}

func TestSweepStopsOnCancelledContext(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Sweep(ctx, w.opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if got := w.j.list(); len(got) != 0 {
		t.Errorf("a cancelled sweep touched %q", got)
	}
}

// TestHostOptionsAreRootOptionsAtTheDefaultRoot: one layout of nfslab's
// directories, whichever root.
func TestHostOptionsAreRootOptionsAtTheDefaultRoot(t *testing.T) {
	podman := func(context.Context) (container.Runtime, error) { return nil, container.ErrNoService }
	h := HostOptions(nil, podman)
	if h.FaultfsRoot != DefaultFaultfsRoot || h.MountRoot != DefaultMountRoot || h.NFSDRoot != DefaultNFSDRoot || h.ExportRoot != DefaultExportRoot ||
		h.Records == nil || h.Records.Dir != DefaultRecordsDir || h.NetnsDir != DefaultNetnsDir || h.Podman == nil {
		t.Fatalf("HostOptions %+v do not name the host's directories", h)
	}
	r := RootOptions(nil, "/tmp/x")
	if r.FaultfsRoot != "/tmp/x/faultfs" || r.Records.Dir != "/tmp/x/proc" || r.MountRoot != "/tmp/x/mnt" ||
		r.NFSDRoot != "/tmp/x/nfsd" || r.ExportRoot != "/tmp/x/export" || r.Podman != nil || r.NetnsDir != "" {
		t.Fatalf("RootOptions %+v reach outside the root", r)
	}
}
