package nfsserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

const ns = "nsenter --mount=/run/nfslab/nfsd/nfslab-nfsd/ns/mnt --net=/run/netns/nfslab-nfsd "

// stopOnNothing is what Stop runs when nothing exists.
var stopOnNothing = []string{"ip link del nfslab-nfs0"}

func TestNetnsStartSequence(t *testing.T) {
	h := newFakeHost()
	h.out[ns+"cat /proc/fs/nfsd/threads"] = "8\n"
	s, err := NewNetns(NetnsConfig{}, h)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := s.Start(context.Background())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	want := append(append([]string{}, stopOnNothing...),
		"ip netns add nfslab-nfsd",
		"ip link add nfslab-nfs0 type veth peer name nfslab-nfs1 netns nfslab-nfsd",
		"ip addr add 10.213.0.1/30 dev nfslab-nfs0",
		"ip link set nfslab-nfs0 up",
		"ip -n nfslab-nfsd addr add 10.213.0.2/30 dev nfslab-nfs1",
		"ip -n nfslab-nfsd link set nfslab-nfs1 up",
		"ip -n nfslab-nfsd link set lo up",
		"mount --bind /run/nfslab/nfsd/nfslab-nfsd/ns /run/nfslab/nfsd/nfslab-nfsd/ns",
		"mount --make-private /run/nfslab/nfsd/nfslab-nfsd/ns",
		"(create /run/nfslab/nfsd/nfslab-nfsd/ns/mnt)",
		"unshare --mount=/run/nfslab/nfsd/nfslab-nfsd/ns/mnt --propagation private true",
		ns+"mount -t nfsd nfsd /proc/fs/nfsd",
		ns+"rpc.mountd -N 2 -N 3",
		ns+"exportfs -i -o rw,sync,no_subtree_check,no_root_squash,insecure,fsid=2049 10.213.0.1:/run/nfslab/export/nfslab-nfsd",
		ns+"rpc.nfsd -N 3 -V 4 --no-udp -G 10 -L 15 -H 10.213.0.2 -p 2049 8",
		ns+"cat /proc/fs/nfsd/threads",
	)
	if !reflect.DeepEqual(h.runs, want) {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(h.runs, "\n"), strings.Join(want, "\n"))
	}
	if !reflect.DeepEqual(h.dials, []string{"10.213.0.2:2049"}) {
		t.Errorf("dials %v", h.dials)
	}
	wantEP := Endpoint{Addr: netip.MustParseAddr("10.213.0.2"), Port: 2049, Export: "/run/nfslab/export/nfslab-nfsd", ClientAddr: netip.MustParseAddr("10.213.0.1")}
	if ep != wantEP {
		t.Errorf("endpoint %+v, want %+v", ep, wantEP)
	}
	if ep.Source() != "10.213.0.2:/run/nfslab/export/nfslab-nfsd" {
		t.Errorf("source %q", ep.Source())
	}

	// Stop undoes it all, in reverse order.
	h.runs = nil
	h.out["ip netns pids nfslab-nfsd"] = "4242\n"
	h.files["/proc/4242"] = ""
	if err := s.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	wantStop := []string{
		ns + "rpc.nfsd 0",
		ns + "exportfs -u 10.213.0.1:/run/nfslab/export/nfslab-nfsd",
		"ip netns pids nfslab-nfsd",
		"umount /run/nfslab/nfsd/nfslab-nfsd/ns/mnt",
		"umount /run/nfslab/nfsd/nfslab-nfsd/ns",
		"ip link del nfslab-nfs0",
		"ip netns del nfslab-nfsd",
	}
	if !reflect.DeepEqual(h.runs, wantStop) {
		t.Errorf("stop commands:\n%s\nwant:\n%s", strings.Join(h.runs, "\n"), strings.Join(wantStop, "\n"))
	}
	if !reflect.DeepEqual(h.signals, []string{"4242 terminated"}) {
		t.Errorf("signals %v, want SIGTERM to the namespace's pid", h.signals)
	}
	if !reflect.DeepEqual(h.removed[len(h.removed)-2:], []string{"/run/nfslab/nfsd/nfslab-nfsd", "/run/nfslab/export/nfslab-nfsd"}) {
		t.Errorf("removed %v", h.removed)
	}
	// A second Stop finds nothing and is not an error.
	h.runs = nil
	if err := s.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if !reflect.DeepEqual(h.runs, stopOnNothing) {
		t.Errorf("second stop ran %q", h.runs)
	}
}

func TestNetnsStartWithoutKernelNFSD(t *testing.T) {
	h := newFakeHost()
	h.files["/proc/filesystems"] = "nodev\tproc\nnodev\tfuse\n"
	h.fail["modprobe nfsd"] = errors.New("modprobe: FATAL: Module nfsd not found")
	s, _ := NewNetns(NetnsConfig{}, h)
	_, err := s.Start(context.Background())
	if !errors.Is(err, ErrNoKernelNFSD) {
		t.Fatalf("Start = %v, want ErrNoKernelNFSD", err)
	}
	for _, want := range []string{"lab VM", "Module nfsd not found"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !reflect.DeepEqual(h.runs, []string{"modprobe nfsd"}) {
		t.Errorf("ran %q; nothing may be created without nfsd", h.runs)
	}
}

func TestNetnsModprobeLoadsNFSD(t *testing.T) {
	h := newFakeHost()
	h.files["/proc/filesystems"] = "nodev\tproc\n"
	h.out[ns+"cat /proc/fs/nfsd/threads"] = "8"
	h.out["modprobe nfsd"] = ""
	// modprobe "loads" the module.
	h.files["/sys/module/nfsd"] = ""
	s, _ := NewNetns(NetnsConfig{}, h)
	if _, err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestNetnsMissingTools(t *testing.T) {
	h := newFakeHost()
	h.missing["rpc.mountd"] = true
	h.missing["exportfs"] = true
	s, _ := NewNetns(NetnsConfig{}, h)
	_, err := s.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "rpc.mountd, exportfs") || !strings.Contains(err.Error(), "nfs-kernel-server") {
		t.Fatalf("Start = %v", err)
	}
}

func TestNetnsFailedStartCleansUp(t *testing.T) {
	h := newFakeHost()
	h.fail[ns+"rpc.nfsd -N"] = errors.New("rpc.nfsd: unable to set any sockets for nfsd")
	s, _ := NewNetns(NetnsConfig{}, h)
	_, err := s.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "starting knfsd") {
		t.Fatalf("Start = %v", err)
	}
	tail := h.runs[len(h.runs)-7:]
	want := []string{
		ns + "rpc.nfsd 0",
		ns + "exportfs -u 10.213.0.1:/run/nfslab/export/nfslab-nfsd",
		"ip netns pids nfslab-nfsd",
		"umount /run/nfslab/nfsd/nfslab-nfsd/ns/mnt",
		"umount /run/nfslab/nfsd/nfslab-nfsd/ns",
		"ip link del nfslab-nfs0",
		"ip netns del nfslab-nfsd",
	}
	if !reflect.DeepEqual(tail, want) {
		t.Errorf("cleanup:\n%s\nwant:\n%s", strings.Join(tail, "\n"), strings.Join(want, "\n"))
	}
	if h.Exists("/run/netns/nfslab-nfsd") || h.Exists("veth") {
		t.Error("failed start left the namespace or veth behind")
	}
}

func TestNetnsUnreachableAfterStart(t *testing.T) {
	h := newFakeHost()
	h.out[ns+"cat /proc/fs/nfsd/threads"] = "8"
	h.dialErr = errRefused
	s, _ := NewNetns(NetnsConfig{}, h)
	_, err := s.Start(context.Background())
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Start = %v, want ErrUnreachable", err)
	}
}

func TestNetnsLocalIO(t *testing.T) {
	h := newFakeHost()
	h.files[LocalIOParam] = "Y\n"
	s, _ := NewNetns(NetnsConfig{}, h)
	_, err := s.Start(context.Background())
	if !errors.Is(err, ErrLocalIO) || !strings.Contains(err.Error(), "echo N > /sys/module/nfs/parameters/localio_enabled") {
		t.Fatalf("Start with LOCALIO on = %v", err)
	}
	if len(h.runs) != 0 {
		t.Errorf("ran %q before refusing", h.runs)
	}
	h.out[ns+"cat /proc/fs/nfsd/threads"] = "8"
	s, _ = NewNetns(NetnsConfig{DisableLocalIO: true}, h)
	if _, err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start with DisableLocalIO: %v", err)
	}
	if !reflect.DeepEqual(h.writes, []string{LocalIOParam + "=N"}) {
		t.Errorf("writes %v", h.writes)
	}
}

func TestLocalIOStates(t *testing.T) {
	h := newFakeHost()
	if st, err := LocalIO(h); st != LocalIOAbsent || err != nil {
		t.Errorf("absent: %v %v", st, err)
	}
	h.files[LocalIOParam] = "N\n"
	if st, _ := LocalIO(h); st != LocalIODisabled {
		t.Errorf("N: %v", st)
	}
	if err := RequireNoLocalIO(h, false); err != nil {
		t.Errorf("disabled: %v", err)
	}
	h.files[LocalIOParam] = "maybe"
	if _, err := LocalIO(h); err == nil {
		t.Error("garbage accepted")
	}
	h.files[LocalIOParam] = "Y"
	h.writeErr = errors.New("permission denied")
	if err := RequireNoLocalIO(h, true); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("failed write: %v", err)
	}
}

func TestNetnsConfigValidate(t *testing.T) {
	tests := []struct {
		c    NetnsConfig
		want string
	}{
		{NetnsConfig{Name: "a/b"}, `netns name "a/b"`},
		{NetnsConfig{HostVeth: "this-name-is-too-long", PeerVeth: "p"}, "at most 15 bytes"},
		{NetnsConfig{HostVeth: "x", PeerVeth: "x"}, "both"},
		{NetnsConfig{Subnet: netip.MustParsePrefix("10.213.0.0/24")}, "must be an IPv4 /30"},
		{NetnsConfig{Subnet: netip.MustParsePrefix("fd00::/30")}, "must be an IPv4 /30"},
		{NetnsConfig{Subnet: netip.MustParsePrefix("10.213.0.1/30")}, "did you mean 10.213.0.0/30"},
		{NetnsConfig{ExportDir: "relative"}, `export dir "relative"`},
		{NetnsConfig{StateDir: "/"}, `state dir "/"`},
		{NetnsConfig{Threads: 1000}, "threads 1000"},
		{NetnsConfig{GraceTime: time.Second}, "at least 10s"},
	}
	for _, tt := range tests {
		_, err := NewNetns(tt.c, newFakeHost())
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewNetns(%+v) = %v, want ErrInvalid containing %q", tt.c, err, tt.want)
		}
	}
	c := NetnsConfig{Name: "nfslt-srv-0123abcd"}.WithDefaults()
	if len(c.HostVeth) > 15 || c.HostVeth == c.PeerVeth || !strings.HasPrefix(c.HostVeth, "nl") {
		t.Errorf("derived veth names %q %q", c.HostVeth, c.PeerVeth)
	}
	if c.ExportDir != "/run/nfslab/export/nfslt-srv-0123abcd" {
		t.Errorf("export dir %q", c.ExportDir)
	}
}

func TestNetnsStatus(t *testing.T) {
	h := newFakeHost()
	s, _ := NewNetns(NetnsConfig{}, h)
	st := s.Status(context.Background())
	if st.Netns || st.Running {
		t.Errorf("status of nothing: %+v", st)
	}
	h.files["/run/netns/nfslab-nfsd"] = ""
	h.files["/run/nfslab/nfsd/nfslab-nfsd/ns/mnt"] = ""
	h.out[ns+"cat /proc/fs/nfsd/threads"] = "8"
	// exportfs -v as nfs-utils 2.6 prints it: a long path on its own line;
	// another server's export in the shared etab is not ours.
	h.out[ns+"exportfs -v"] = "/run/nfslab/export/nfslab-nfsd\n\t\t10.213.0.1(sync,wdelay,hide,no_subtree_check,fsid=2049,sec=sys,rw,insecure,no_root_squash,no_all_squash)\n" +
		"/srv/other      10.0.0.1(sync,rw)\n"
	h.out["ip netns pids nfslab-nfsd"] = "77\n"
	st = s.Status(context.Background())
	if !st.Running || st.Threads != 8 || len(st.Exports) != 1 || !reflect.DeepEqual(st.PIDs, []int{77}) {
		t.Errorf("status %+v", st)
	}
	if want := "/run/nfslab/export/nfslab-nfsd 10.213.0.1(sync,wdelay,hide,no_subtree_check,fsid=2049,sec=sys,rw,insecure,no_root_squash,no_all_squash)"; len(st.Exports) == 1 && st.Exports[0] != want {
		t.Errorf("export %q, want %q", st.Exports[0], want)
	}
}

func TestExternal(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost()
	e, err := NewExternal(ExternalConfig{Addr: "192.168.24.110", Export: "/"}, h)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := e.Start(ctx)
	if err != nil || ep.Source() != "192.168.24.110:/" || ep.Port != 2049 {
		t.Fatalf("Start = %+v, %v", ep, err)
	}
	h.dialErr = errRefused
	if _, err := e.Start(ctx); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "192.168.24.110:2049") {
		t.Fatalf("unreachable: %v", err)
	}
	h.dialErr = nil
	// A local server with LOCALIO on: refused with the fix.
	h.files[LocalIOParam] = "Y"
	h.local = []netip.Addr{netip.MustParseAddr("192.168.24.110")}
	if _, err := e.Start(ctx); !errors.Is(err, ErrLocalIO) || !strings.Contains(err.Error(), "on this host") {
		t.Fatalf("local with LOCALIO: %v", err)
	}
	lo, _ := NewExternal(ExternalConfig{Addr: "127.0.0.1", Export: "/", DisableLocalIO: true}, h)
	if _, err := lo.Start(ctx); err != nil {
		t.Fatalf("loopback with DisableLocalIO: %v", err)
	}
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []ExternalConfig{{Addr: "", Export: "/"}, {Addr: "a b", Export: "/"}, {Addr: "h", Port: 70000, Export: "/"}, {Addr: "h", Export: "srv"}} {
		if _, err := NewExternal(bad, h); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewExternal(%+v) = %v", bad, err)
		}
	}
	_ = fmt.Sprint()
}

func TestGuardLocalIO(t *testing.T) {
	h := newFakeHost()
	h.files["/proc/filesystems"] = "nodev\tnfs4\n"
	h.files[LocalIOParam] = "Y"
	if err := GuardLocalIO(h, false); err != nil {
		t.Errorf("no local knfsd: %v", err)
	}
	h.files["/sys/module/nfsd"] = ""
	if err := GuardLocalIO(h, false); !errors.Is(err, ErrLocalIO) {
		t.Errorf("local knfsd with LOCALIO: %v", err)
	}
	_ = fmt.Sprint()
}
