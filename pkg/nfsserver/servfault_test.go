package nfsserver

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// running returns a fake host on which the netns server is up.
func running(t *testing.T) (*fakeHost, *NetnsServer) {
	t.Helper()
	h := newFakeHost()
	s, err := NewNetns(NetnsConfig{}, h)
	if err != nil {
		t.Fatal(err)
	}
	h.files["/run/netns/nfslab-nfsd"] = ""
	h.files["/run/nfslab/nfsd/nfslab-nfsd/ns/mnt"] = ""
	return h, s
}

func TestServerFaultStopAndStart(t *testing.T) {
	h, s := running(t)
	ctx := context.Background()
	if err := s.Fault(ctx, FaultStop, true, FaultTarget{}); err != nil {
		t.Fatal(err)
	}
	h.out[ns+"cat /proc/fs/nfsd/threads"] = "0\n"
	// A fake that answers 8 once rpc.nfsd started the threads.
	if err := s.Fault(ctx, FaultStop, false, FaultTarget{}); err == nil || !strings.Contains(err.Error(), "threads is 0") {
		t.Fatalf("start with no threads after rpc.nfsd: %v, want the threads error", err)
	}
	h.out[ns+"cat /proc/fs/nfsd/threads"] = "8\n"
	h.runs = nil
	if err := s.Fault(ctx, FaultStop, false, FaultTarget{}); err != nil {
		t.Fatal(err)
	}
	// Running already: starting again changes nothing.
	if want := []string{ns + "cat /proc/fs/nfsd/threads"}; !reflect.DeepEqual(h.runs, want) {
		t.Errorf("commands %q, want %q", h.runs, want)
	}
}

func TestServerFaultCommands(t *testing.T) {
	h, s := running(t)
	ctx := context.Background()
	h.out[ns+"cat /proc/fs/nfsd/threads"] = "0\n"
	_ = s.Fault(ctx, FaultStop, true, FaultTarget{})
	_ = s.Fault(ctx, FaultUnexport, true, FaultTarget{})
	_ = s.Fault(ctx, FaultUnexport, false, FaultTarget{})
	want := []string{
		ns + "rpc.nfsd 0",
		ns + "exportfs -i -o ro,sync,no_subtree_check,insecure,fsid=2050 10.213.0.1:/run/nfslab/nfsd/nfslab-nfsd/placeholder",
		ns + "exportfs -u 10.213.0.1:/run/nfslab/export/nfslab-nfsd",
		ns + "exportfs -i -o rw,sync,no_subtree_check,no_root_squash,insecure,fsid=2049 10.213.0.1:/run/nfslab/export/nfslab-nfsd",
		ns + "exportfs -u 10.213.0.1:/run/nfslab/nfsd/nfslab-nfsd/placeholder",
	}
	if !reflect.DeepEqual(h.runs, want) {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(h.runs, "\n"), strings.Join(want, "\n"))
	}
	if h.Exists("/run/nfslab/nfsd/nfslab-nfsd/placeholder") {
		t.Error("the placeholder export's directory is left after the export came back")
	}
	// Stop removes a placeholder left by a crash during an unexport.
	_ = s.Unexport(ctx)
	h.runs = nil
	_ = s.Stop(ctx)
	if !slices.Contains(h.runs, ns+"exportfs -u 10.213.0.1:/run/nfslab/nfsd/nfslab-nfsd/placeholder") || h.Exists("/run/nfslab/nfsd/nfslab-nfsd/placeholder") {
		t.Errorf("Stop left the placeholder export: ran\n%s", strings.Join(h.runs, "\n"))
	}
	h.files["/run/netns/nfslab-nfsd"] = ""
	h.files["/run/nfslab/nfsd/nfslab-nfsd/ns/mnt"] = ""
	// The start after a stop uses Start's own rpc.nfsd arguments.
	h.runs = nil
	_ = s.StartThreads(ctx)
	if len(h.runs) < 2 || h.runs[1] != ns+"rpc.nfsd -N 3 -V 4 --no-udp -G 10 -L 15 -H 10.213.0.2 -p 2049 8" {
		t.Errorf("start commands %q", h.runs)
	}
}

func TestServerFaultUnexportTwiceIsDone(t *testing.T) {
	h, s := running(t)
	h.fail[ns+"exportfs -u"] = notFoundErr("exportfs: Could not find '10.213.0.1:/x' to unexport.")
	if err := s.Fault(context.Background(), FaultUnexport, true, FaultTarget{}); err != nil {
		t.Fatalf("unexport of a missing export: %v", err)
	}
	h.fail[ns+"exportfs -u"] = notFoundErr("exportfs: permission denied")
	if err := s.Fault(context.Background(), FaultUnexport, true, FaultTarget{}); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("unexport error %v, want it with the command's output", err)
	}
}

func TestServerFaultNeedsRunningServer(t *testing.T) {
	h := newFakeHost()
	s, _ := NewNetns(NetnsConfig{}, h)
	for _, f := range ServerFaults {
		var tg FaultTarget
		if f == FaultEIO {
			tg.Path = "journal-1.log"
		}
		if err := s.Fault(context.Background(), f, true, tg); !errors.Is(err, ErrNotRunning) {
			t.Errorf("%s on a stopped server: %v, want ErrNotRunning", f, err)
		}
	}
	if len(h.runs) != 0 {
		t.Errorf("ran %q on a stopped server", h.runs)
	}
}

func TestExpireClients(t *testing.T) {
	h, s := running(t)
	h.out[ns+"ls -1 /proc/fs/nfsd/clients"] = "3\n7\n"
	h.out["ip netns pids nfslab-nfsd"] = "412\n"
	ids, err := s.ExpireClients(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []string{"3", "7"}) {
		t.Errorf("expired %q", ids)
	}
	want := []string{"/proc/412/root/proc/fs/nfsd/clients/3/ctl=expire\n", "/proc/412/root/proc/fs/nfsd/clients/7/ctl=expire\n"}
	if !reflect.DeepEqual(h.writes, want) {
		t.Errorf("writes %q, want %q", h.writes, want)
	}
	// No clients: nothing written, no error.
	h.writes = nil
	h.out[ns+"ls -1 /proc/fs/nfsd/clients"] = ""
	if ids, err := s.ExpireClients(context.Background()); err != nil || len(ids) != 0 || len(h.writes) != 0 {
		t.Errorf("no clients: %q %v, writes %q", ids, err, h.writes)
	}
}

func TestParseServerFault(t *testing.T) {
	if f, err := ParseServerFault("unexport"); err != nil || f != FaultUnexport {
		t.Errorf("unexport: %v %v", f, err)
	}
	if _, err := ParseServerFault("explode"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"explode"`) {
		t.Errorf("explode: %v", err)
	}
}

const exportMountinfo = "36 25 0:31 / /run/nfslab/export/nfslab-nfsd rw,relatime shared:17 - tmpfs nfslab-export rw,size=65536k,mode=755\n"

func TestSizeBoundedExportStartStop(t *testing.T) {
	h := newFakeHost()
	h.out[ns+"cat /proc/fs/nfsd/threads"] = "8\n"
	s, err := NewNetns(NetnsConfig{ExportSize: 64 << 20}, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	mnt := "mount -t tmpfs -o size=67108864,mode=0755 nfslab-export /run/nfslab/export/nfslab-nfsd"
	i := slices.Index(h.runs, mnt)
	if i < 0 || i > slices.Index(h.runs, "unshare --mount=/run/nfslab/nfsd/nfslab-nfsd/ns/mnt --propagation private true") {
		t.Fatalf("tmpfs mount missing or after the server's mount namespace was made:\n%s", strings.Join(h.runs, "\n"))
	}
	// Stop finds the tmpfs in mountinfo (as after a crash) and unmounts it.
	h.files["/proc/self/mountinfo"] = exportMountinfo
	h.files["/run/nfslab/export/nfslab-nfsd"] = ""
	h.runs = nil
	s2, _ := NewNetns(NetnsConfig{}, h) // cleanup knows only the name
	if err := s2.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(h.runs, "umount /run/nfslab/export/nfslab-nfsd") {
		t.Errorf("Stop did not unmount the export tmpfs:\n%s", strings.Join(h.runs, "\n"))
	}
	for _, bad := range []NetnsConfig{{ExportSize: 1000}, {ExportSize: 64 << 20, ExportDir: "/srv/data"}} {
		if _, err := NewNetns(bad, h); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestFillAndUnfill(t *testing.T) {
	h, s := running(t)
	ctx := context.Background()
	if err := s.Fault(ctx, FaultFill, true, FaultTarget{}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "size-bounded") {
		t.Fatalf("fill of a plain export: %v, want a refusal", err)
	}
	if len(h.runs) != 0 {
		t.Fatalf("refused fill ran %q", h.runs)
	}
	h.files["/proc/self/mountinfo"] = exportMountinfo
	// A writer takes space while fallocate runs: the first chunk fails
	// with ENOSPC, the next asks for half of what is free, then the rest.
	h.script = map[string][]scripted{
		"stat -f -c %a:%S /run/nfslab/export/nfslab-nfsd": {{out: "12000:4096\n"}, {out: "11000:4096\n"}, {out: "5500:4096\n"}, {out: "0:4096\n"}},
		"fallocate -o 0 -l 49152000":                      {{err: notFoundErr("fallocate: fallocate failed: No space left on device")}},
	}
	if err := s.Fault(ctx, FaultFill, true, FaultTarget{}); err != nil {
		t.Fatal(err)
	}
	st := "stat -f -c %a:%S /run/nfslab/export/nfslab-nfsd"
	want := []string{st, "fallocate -o 0 -l 49152000 /run/nfslab/export/nfslab-nfsd/.nfslab-fill",
		st, "fallocate -o 0 -l 22528000 /run/nfslab/export/nfslab-nfsd/.nfslab-fill",
		st, "fallocate -o 22528000 -l 22528000 /run/nfslab/export/nfslab-nfsd/.nfslab-fill", st}
	if !reflect.DeepEqual(h.runs, want) {
		t.Errorf("fill ran:\n%s\nwant:\n%s", strings.Join(h.runs, "\n"), strings.Join(want, "\n"))
	}
	// Another error is not retried.
	h.script = map[string][]scripted{"stat -f": {{out: "10:4096\n"}}, "fallocate": {{err: notFoundErr("fallocate: Operation not supported")}}}
	if err := s.Fault(ctx, FaultFill, true, FaultTarget{}); err == nil || !strings.Contains(err.Error(), "Operation not supported") {
		t.Errorf("fill with fallocate unsupported: %v", err)
	}
	h.removed = nil
	if err := s.Fault(ctx, FaultFill, false, FaultTarget{}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.removed, []string{"/run/nfslab/export/nfslab-nfsd/.nfslab-fill"}) {
		t.Errorf("unfill removed %q", h.removed)
	}
}

func TestMountinfoHas(t *testing.T) {
	if !mountinfoHas(exportMountinfo, "/run/nfslab/export/nfslab-nfsd/", "nfslab-export") {
		t.Error("missed the export tmpfs")
	}
	if mountinfoHas("36 25 0:31 / /run/nfslab/export/nfslab-nfsd rw - tmpfs tmpfs rw\n", "/run/nfslab/export/nfslab-nfsd", "nfslab-export") {
		t.Error("took somebody else's tmpfs for nfslab's")
	}
}

// TestIsExportSource: the marks of a size-bounded export, the tmpfs and a
// dm device NetnsConfig names, are nfslab's; other sources are not.
func TestIsExportSource(t *testing.T) {
	c := NetnsConfig{Name: "lab"}.WithDefaults()
	for src, want := range map[string]bool{
		exportFSSource: true, c.dmDev(): true, NetnsConfig{}.WithDefaults().dmDev(): true,
		"tmpfs": false, "/dev/mapper/other-export": false, "/dev/mapper/nfslab-x": false,
		"/dev/mapper/nfslab-a/b-export": false, "/dev/sda1": false,
	} {
		if got := IsExportSource(src); got != want {
			t.Errorf("IsExportSource(%q) = %v, want %v", src, got, want)
		}
	}
}
