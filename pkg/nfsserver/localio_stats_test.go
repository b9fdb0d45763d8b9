package nfsserver

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

const testMountstats = `device rootfs mounted on / with fstype rootfs
device 10.99.0.2:/ mounted on /mnt/other with fstype nfs4 statvers=1.1
	per-op statistics
	        READ: 7 7 0 0 0 0 0 0 0
	       WRITE: 9 9 0 0 0 0 0 0 0
device 10.99.0.2:/ mounted on /mnt/lab with fstype nfs4 statvers=1.1
	opts:	rw,vers=4.2,rsize=1048576,wsize=1048576,soft,proto=tcp,timeo=10,retrans=2
	events:	1 2 3
	xprt:	tcp 0 0 1 0 0 10 10 0 10 0 2 0 0
	per-op statistics
	        NULL: 1 1 0 44 24 0 0 0 0
	        READ: %d 0 0 0 0 0 0 0 0
	       WRITE: %d 0 0 0 0 0 0 0 0
	      COMMIT: %d 0 0 0 0 0 0 0 0
	     GETATTR: 40 40 0 0 0 0 0 0 0
device proc mounted on /proc with fstype proc
`

func stats(r, w, c int) string { return fmt.Sprintf(testMountstats, r, w, c) }

func TestMountOps(t *testing.T) {
	ops, err := MountOps([]byte(stats(1, 2, 3)), "/mnt/lab")
	if err != nil {
		t.Fatal(err)
	}
	if ops["READ"] != 1 || ops["WRITE"] != 2 || ops["COMMIT"] != 3 || ops["GETATTR"] != 40 || len(ops) != 5 {
		t.Errorf("ops %v", ops)
	}
	if ops, _ := MountOps([]byte(stats(1, 2, 3)), "/mnt/other"); ops["WRITE"] != 9 {
		t.Errorf("other mount %v", ops)
	}
	if _, err := MountOps([]byte(stats(1, 2, 3)), "/proc"); err == nil {
		t.Error("a non-NFS mount must not count")
	}
}

func TestLocalIOBypass(t *testing.T) {
	fsys := fstest.MapFS{
		"sys/module/nfs/parameters/localio_enabled": {Data: []byte("Y\n")},
		"proc/self/mountstats":                      {Data: []byte(stats(0, 4, 1))},
	}
	before, err := SampleLocalIO(fsys, "proc/self/mountstats", "/mnt/lab")
	if err != nil || before.Param != LocalIOEnabled || before.Ops["WRITE"] != 4 || len(before.Sysfs) != 0 {
		t.Fatalf("sample %+v %v", before, err)
	}
	// The data grew, the counts did not: LOCALIO.
	ok, why := LocalIOBypass(before, before, 8<<20)
	if !ok || !strings.Contains(why, "localio_enabled=Y") || !strings.Contains(why, "WRITE 4 -> 4") ||
		!strings.Contains(why, "no /sys/fs/nfs/*/localio on this kernel") || !strings.Contains(why, LocalIOFix) {
		t.Errorf("bypass %v %q", ok, why)
	}
	// WRITE RPCs moved: over the network.
	fsys["proc/self/mountstats"] = &fstest.MapFile{Data: []byte(stats(0, 9, 2))}
	after, _ := SampleLocalIO(fsys, "proc/self/mountstats", "/mnt/lab")
	if ok, why := LocalIOBypass(before, after, 8<<20); ok || !strings.Contains(why, "WRITE 4 -> 9") {
		t.Errorf("network %v %q", ok, why)
	}
	// Nothing written: no claim either way.
	if ok, _ := LocalIOBypass(before, before, 0); ok {
		t.Error("no data, no bypass")
	}
	// A kernel with the sysfs files: they are quoted; N rules LOCALIO out.
	fsys["sys/fs/nfs/0/localio"] = &fstest.MapFile{Data: []byte("1\n")}
	s, _ := SampleLocalIO(fsys, "proc/self/mountstats", "/mnt/lab")
	if ok, why := LocalIOBypass(s, s, 1); !ok || !strings.Contains(why, "/sys/fs/nfs/0/localio=1") {
		t.Errorf("sysfs %v %q", ok, why)
	}
	fsys["sys/module/nfs/parameters/localio_enabled"] = &fstest.MapFile{Data: []byte("N\n")}
	s, _ = SampleLocalIO(fsys, "proc/self/mountstats", "/mnt/lab")
	if ok, _ := LocalIOBypass(s, s, 1); ok {
		t.Error("LOCALIO off cannot bypass")
	}
}

func TestNetnsConfigAllowAndDisableLocalIO(t *testing.T) {
	c := NetnsConfig{AllowLocalIO: true, DisableLocalIO: true}
	if err := c.WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "LOCALIO") {
		t.Errorf("both: %v", err)
	}
}
