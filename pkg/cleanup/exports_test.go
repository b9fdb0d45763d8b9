package cleanup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/mount"
)

// mkdirs makes each path (a directory, with a file in it) below base.
func mkdirs(t *testing.T, base string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		d := filepath.Join(base, p)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "data"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// exportOwnersWorld: four exports below a temporary root. run-live's
// container server is still there, nfslab-live's netns server still
// runs, nfslab-stopped has a state directory but no knfsd threads, and
// run-gone has no owner at all.
func exportOwnersWorld(t *testing.T) (Options, *[]string) {
	t.Helper()
	base := t.TempDir()
	o := Options{ExportRoot: filepath.Join(base, "export"), NFSDRoot: filepath.Join(base, "nfsd"), Mounter: mount.NewFake()}
	mkdirs(t, o.ExportRoot, "run-live", "nfslab-live", "nfslab-stopped", "run-gone")
	mkdirs(t, o.NFSDRoot, "nfslab-live", "nfslab-stopped")
	ctr := container.NewFake(func() time.Time { return time.Unix(1000, 0) })
	ctr.AddImage("docker.io/library/busybox:latest")
	for _, c := range []struct{ name, run, role string }{
		{"nfslab-nfs-run-live", "run-live", container.RoleNFSServer},
		{"nfslab-probe-run-gone", "run-gone", container.RoleProbe}, // not the export's owner
	} {
		if _, err := ctr.Create(context.Background(), container.Spec{Name: c.name, Image: "docker.io/library/busybox:latest",
			Labels: container.OwnedLabels(c.run, c.role, nil)}); err != nil {
			t.Fatal(err)
		}
	}
	var asked []string
	o.Podman = func(context.Context) (container.Runtime, error) {
		asked = append(asked, "podman")
		return journaledRuntime{ctr, &journal{}}, nil
	}
	o.ServerRunning = func(_ context.Context, name, stateDir string) bool {
		asked = append(asked, "status "+name+" "+stateDir)
		return name == "nfslab-live"
	}
	return o, &asked
}

// TestSweepExportsKeepsLiveOwners: the daemon's start-up (KeepLiveOwners)
// keeps an export whose container server or netns server is still there,
// asking podman once; heal --all removes every export and asks nobody.
func TestSweepExportsKeepsLiveOwners(t *testing.T) {
	o, asked := exportOwnersWorld(t)
	o.KeepLiveOwners = true
	var sr StepReport
	sweepExports(context.Background(), o, &sr)
	if sr.Err != nil {
		t.Fatal(sr.Err)
	}
	want := []string{o.ExportRoot + "/nfslab-stopped", o.ExportRoot + "/run-gone"}
	if !reflect.DeepEqual(sr.Removed, want) {
		t.Errorf("removed %q, want %q", sr.Removed, want)
	}
	if len(sr.Kept) != 2 || !strings.Contains(sr.Kept[0], "netns NFS server nfslab-live runs") ||
		!strings.Contains(sr.Kept[1], "container server nfslab-nfs-run-live of run run-live") {
		t.Errorf("kept %q", sr.Kept)
	}
	for _, n := range []string{"nfslab-live", "run-live"} {
		if !exists(filepath.Join(o.ExportRoot, n, "data")) {
			t.Errorf("live export %s lost its data", n)
		}
	}
	if n := strings.Count(strings.Join(*asked, "\n"), "podman"); n != 1 {
		t.Errorf("asked podman %d times: %q", n, *asked)
	}
	if !slices.Contains(*asked, "status nfslab-stopped "+o.NFSDRoot+"/nfslab-stopped") {
		t.Errorf("the stopped server was not asked: %q", *asked)
	}

	o, asked = exportOwnersWorld(t)
	sr = StepReport{}
	sweepExports(context.Background(), o, &sr)
	if sr.Err != nil || len(sr.Removed) != 4 || len(sr.Kept) != 0 || len(*asked) != 0 {
		t.Errorf("heal --all: removed %q kept %q err %v asked %q", sr.Removed, sr.Kept, sr.Err, *asked)
	}
}

// TestSweepExportsUnknownOwnerIsKept: with KeepLiveOwners, a podman that
// fails to answer leaves every export in place (it might be a live run's);
// no podman service at all means no container owns any.
func TestSweepExportsUnknownOwnerIsKept(t *testing.T) {
	for _, tc := range []struct {
		err  error
		kept int
	}{{errors.New("podman: 500 internal error"), 4}, {fmt.Errorf("%w at unix:///run/podman/podman.sock", container.ErrNoService), 1}} {
		o, _ := exportOwnersWorld(t)
		o.KeepLiveOwners = true
		o.Podman = func(context.Context) (container.Runtime, error) { return nil, tc.err }
		var sr StepReport
		sweepExports(context.Background(), o, &sr)
		if sr.Err != nil || len(sr.Kept) != tc.kept || len(sr.Removed) != 4-tc.kept {
			t.Errorf("podman %v: removed %q kept %q err %v", tc.err, sr.Removed, sr.Kept, sr.Err)
		}
	}
}

// TestSweepExportsMountsAndSymlinks: a directory with a mount nfslab did
// not make on or below it is kept and reported, and nothing is unmounted
// there; nfslab's own export mount (source nfslab-export) on ROOT/NAME is
// unmounted and the directory removed; a busy one stays with an error. A
// symlink, as an entry or as the root itself, is never followed.
func TestSweepExportsMountsAndSymlinks(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "export"), filepath.Join(base, "outside")
	mkdirs(t, root, "under/sub", "on", "ours", "stuck")
	mkdirs(t, outside, "victim")
	if err := os.Symlink(filepath.Join(outside, "victim"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	j := &journal{}
	m := mount.NewFake()
	m.AddDir(root+"/under/sub", root+"/on", root+"/ours", root+"/stuck")
	ctx := context.Background()
	for _, mt := range [][2]string{{"tmpfs", root + "/under/sub"}, {"/dev/sdb1", root + "/on"}, {"nfslab-export", root + "/on"},
		{"nfslab-export", root + "/ours"}, {"/dev/mapper/nfslab-x-export", root + "/stuck"}} {
		if err := m.Mount(ctx, mt[0], mt[1], "tmpfs", nil); err != nil {
			t.Fatal(err)
		}
	}
	var sr StepReport
	sweepExports(ctx, Options{ExportRoot: root, Mounter: failUnmount{recMounter{m, j}, root + "/stuck"}, UnmountTimeout: time.Second}, &sr)
	if want := []string{root + "/ours (unmounted its tmpfs)"}; !reflect.DeepEqual(sr.Removed, want) {
		t.Errorf("removed %q, want %q", sr.Removed, want)
	}
	if len(sr.Kept) != 2 || !strings.Contains(sr.Kept[0], "/dev/sdb1 is mounted on "+root+"/on") ||
		!strings.Contains(sr.Kept[1], "tmpfs is mounted on "+root+"/under/sub") {
		t.Errorf("kept %q", sr.Kept)
	}
	if sr.Err == nil || !strings.Contains(sr.Err.Error(), "unmounting "+root+"/stuck") {
		t.Errorf("err %v, want the stuck unmount", sr.Err)
	}
	if got := j.list(); !reflect.DeepEqual(got, []string{"unmount " + root + "/ours", "unmount " + root + "/stuck"}) {
		t.Errorf("unmounted %q: only nfslab's export mounts may be", got)
	}
	for _, p := range []string{root + "/under/sub/data", root + "/on/data", root + "/stuck/data", outside + "/victim/data", root + "/link"} {
		if !exists(p) {
			t.Errorf("%s is gone", p)
		}
	}

	// A symlink in place of the root is refused, its target untouched.
	sr = StepReport{}
	link := filepath.Join(base, "rootlink")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	sweepExports(ctx, Options{ExportRoot: link, Mounter: mount.NewFake()}, &sr)
	if sr.Err == nil || !strings.Contains(sr.Err.Error(), "not following it") || !exists(outside+"/victim/data") {
		t.Errorf("symlinked root: err %v", sr.Err)
	}

	// A missing root is nothing to do.
	sr = StepReport{}
	sweepExports(ctx, Options{ExportRoot: filepath.Join(base, "none"), Mounter: mount.NewFake()}, &sr)
	if sr.Err != nil || len(sr.Removed) != 0 {
		t.Errorf("missing root: %+v", sr)
	}
}

// failUnmount fails every unmount of one target (journaled first), as a
// mount that none of plain, forced and lazy unmount takes off would.
type failUnmount struct {
	recMounter
	target string
}

func (f failUnmount) Unmount(ctx context.Context, target string, o mount.UnmountOptions) (mount.UnmountResult, error) {
	if target == f.target {
		f.j.add("unmount %s", target)
		return mount.UnmountResult{}, errors.New("device or resource busy")
	}
	return f.recMounter.Unmount(ctx, target, o)
}

// TestSweepExportsReal removes real directories below a temporary export
// root, reading the real mount table (nothing is mounted there; no root
// needed): nested trees go, a symlink entry is removed as a link and its
// target outside the root stays, a file that is no directory stays.
func TestSweepExportsReal(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "export"), filepath.Join(base, "outside")
	mkdirs(t, root, "run-x/journal/deep", "nfslab-nfsd")
	mkdirs(t, outside, "victim")
	if err := os.Symlink(filepath.Join(outside, "victim"), filepath.Join(root, "run-x", "journal", "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "stray"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := Sweep(context.Background(), Options{ExportRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Step(StepExports).Removed; !reflect.DeepEqual(got, []string{root + "/nfslab-nfsd", root + "/run-x"}) {
		t.Errorf("removed %q", got)
	}
	for _, p := range []string{root + "/nfslab-nfsd", root + "/run-x"} {
		if exists(p) {
			t.Errorf("%s left behind", p)
		}
	}
	for _, p := range []string{outside + "/victim/data", root + "/link", root + "/stray"} {
		if !exists(p) {
			t.Errorf("%s is gone", p)
		}
	}
	// Not found is done.
	if rep, err := Sweep(context.Background(), Options{ExportRoot: root}); err != nil || rep.Removed() != 0 {
		t.Errorf("second sweep removed %d, err %v", rep.Removed(), err)
	}
}
