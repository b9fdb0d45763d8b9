package nfsserver

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// filefragOut is `filefrag -e -b512` of a 1 MiB file after fallocate -n:
// three extents, the middle one written.
const filefragOut = `Filesystem type is: ef53
File size of x is 1048576 (2048 blocks of 512 bytes)
 ext:     logical_offset:        physical_offset: length:   expected: flags:
   0:        0..      79:     264192..    264271:     80:             unwritten
   1:       80..     103:     300000..    300023:     24:     264272:
   2:      104..    2047:     300024..    301967:   1944:             last,unwritten,eof
x: 2 extents found
`

func TestParseFilefragAndDeviceRanges(t *testing.T) {
	exts, err := parseFilefrag(filefragOut)
	if err != nil {
		t.Fatal(err)
	}
	want := []extent{{sectorRange{0, 79}, 264192}, {sectorRange{80, 103}, 300000}, {sectorRange{104, 2047}, 300024}}
	if !reflect.DeepEqual(exts, want) {
		t.Fatalf("extents %+v, want %+v", exts, want)
	}
	// The whole file; from its byte 4096 on (sector 8); one sector of the
	// middle extent; past its end.
	for _, c := range []struct {
		r    sectorRange
		want []sectorRange
	}{
		{sectorRange{0, -1}, []sectorRange{{264192, 264271}, {300000, 300023}, {300024, 301967}}},
		{sectorRange{8, -1}, []sectorRange{{264200, 264271}, {300000, 300023}, {300024, 301967}}},
		{sectorRange{90, 90}, []sectorRange{{300010, 300010}}},
		{sectorRange{4000, -1}, nil},
	} {
		if got := deviceRanges(exts, c.r); !reflect.DeepEqual(got, c.want) {
			t.Errorf("file sectors %+v: device %+v, want %+v", c.r, got, c.want)
		}
	}
	for _, bad := range []string{
		"   0:        0..      79:   abc..    264271:     80:             unwritten\n",
		"   0:        0..      79:          0..         0:     80:             unknown_loc,delalloc\n",
	} {
		if _, err := parseFilefrag(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestEIOTable(t *testing.T) {
	got := eioTable("/dev/loop3", 1000, []sectorRange{{500, 599}, {10, 19}, {590, 700}, {990, 2000}})
	want := "0 10 linear /dev/loop3 0\n10 10 error\n20 480 linear /dev/loop3 20\n500 201 error\n701 289 linear /dev/loop3 701\n990 10 error\n"
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	if got := eioTable("/dev/loop3", 1000, []sectorRange{{0, 999}}); got != "0 1000 error\n" {
		t.Errorf("whole device: %q", got)
	}
}

func TestFaultTargetValidate(t *testing.T) {
	for _, c := range []struct {
		f    ServerFault
		t    FaultTarget
		want string // "" valid
	}{
		{FaultEIO, FaultTarget{Path: "journal-1.log"}, ""},
		{FaultEIO, FaultTarget{Path: "d/journal-1.log", Blocks: "8-"}, ""},
		{FaultEIO, FaultTarget{Blocks: "0-1023"}, ""},
		{FaultEIO, FaultTarget{}, "eio needs a path"},
		{FaultEIO, FaultTarget{Path: "../x"}, `path "../x"`},
		{FaultEIO, FaultTarget{Path: "."}, `path "."`},
		{FaultEIO, FaultTarget{Blocks: "7"}, `blocks "7"`},
		{FaultEIO, FaultTarget{Blocks: "9-3"}, `blocks "9-3"`},
		{FaultEIO, FaultTarget{Blocks: "-3"}, `blocks "-3"`},
		{FaultFill, FaultTarget{Path: "x"}, "eio fault only"},
		{FaultFill, FaultTarget{}, ""},
	} {
		err := c.t.Validate(c.f)
		if c.want == "" && err != nil || c.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s %+v: %v, want %q", c.f, c.t, err, c.want)
		}
	}
	if _, err := (FaultTarget{Path: "/etc/passwd"}).resolve("/run/nfslab/export/x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("absolute path outside the export: %v", err)
	}
	if p, err := (FaultTarget{Path: "/run/nfslab/export/x/a"}).resolve("/run/nfslab/export/x"); err != nil || p != "/run/nfslab/export/x/a" {
		t.Errorf("absolute path inside the export: %q %v", p, err)
	}
}

const (
	img    = "/run/nfslab/nfsd/nfslab-nfsd/export.img"
	table  = "/run/nfslab/nfsd/nfslab-nfsd/export.table"
	jfile  = "/run/nfslab/export/nfslab-nfsd/journal-1.log"
	dmname = "nfslab-nfsd-export"
)

// blockRunning is a running netns server with an ext4 export on /dev/loop3.
func blockRunning(t *testing.T) (*fakeHost, *NetnsServer) {
	h, s := running(t)
	h.files[img] = ""
	h.out["losetup --list --noheadings --output NAME --associated "+img] = "/dev/loop3\n"
	h.out["blockdev --getsz /dev/loop3"] = "400000\n"
	h.out["stat -c %s:%F "+jfile] = "1048576:regular file\n"
	h.out["filefrag -e -b512 "+jfile] = filefragOut
	return h, s
}

func TestEIOOnAFileAndOff(t *testing.T) {
	h, s := blockRunning(t)
	ctx := context.Background()
	if err := s.Fault(ctx, FaultEIO, true, FaultTarget{Path: "journal-1.log", Blocks: "8-"}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"losetup --list --noheadings --output NAME --associated " + img,
		"blockdev --getsz /dev/loop3",
		"stat -c %s:%F " + jfile,
		"fallocate -n -o 0 -l 1048576 " + jfile,
		"sync " + jfile,
		"filefrag -e -b512 " + jfile,
		"(create " + table + ")",
		"dmsetup suspend --noudevsync --nolockfs " + dmname,
		"dmsetup load --noudevsync " + dmname + " " + table,
		"dmsetup resume --noudevsync " + dmname,
		"dd if=" + jfile + " iflag=nocache count=0 status=none",
	}
	if !reflect.DeepEqual(h.runs, want) {
		t.Errorf("eio on ran:\n%s\nwant:\n%s", strings.Join(h.runs, "\n"), strings.Join(want, "\n"))
	}
	if got := h.files[table]; !strings.Contains(got, "264200 72 error\n") || !strings.Contains(got, "300000 1968 error\n") || !strings.HasPrefix(got, "0 264200 linear /dev/loop3 0\n") {
		t.Errorf("table written:\n%s", got)
	}
	h.runs = nil
	if err := s.Fault(ctx, FaultEIO, false, FaultTarget{Path: "ignored"}); err != nil {
		t.Fatal(err)
	}
	if got := h.files[table]; got != "0 400000 linear /dev/loop3 0\n" {
		t.Errorf("off table %q", got)
	}
	if !slices.Contains(h.runs, "dmsetup resume --noudevsync "+dmname) {
		t.Errorf("off ran %q", h.runs)
	}
}

func TestEIOBlocksOfTheDevice(t *testing.T) {
	h, s := blockRunning(t)
	ctx := context.Background()
	if err := s.Fault(ctx, FaultEIO, true, FaultTarget{Blocks: "100-"}); err != nil {
		t.Fatal(err)
	}
	if got := h.files[table]; got != "0 100 linear /dev/loop3 0\n100 399900 error\n" {
		t.Errorf("table %q", got)
	}
	h.runs = nil
	if err := s.Fault(ctx, FaultEIO, true, FaultTarget{Blocks: "0-400000"}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "400000 sectors") {
		t.Errorf("blocks past the device: %v", err)
	}
	if slices.ContainsFunc(h.runs, func(r string) bool { return strings.HasPrefix(r, "dmsetup") }) {
		t.Errorf("a refused eio touched the device: %q", h.runs)
	}
}

func TestEIOResumesAfterAFailedLoad(t *testing.T) {
	h, s := blockRunning(t)
	h.fail["dmsetup load"] = errors.New("exit status 1: device-mapper: reload ioctl failed: Invalid argument")
	err := s.Fault(context.Background(), FaultEIO, true, FaultTarget{Blocks: "0-7"})
	if err == nil || !strings.Contains(err.Error(), "Invalid argument") {
		t.Fatalf("err %v", err)
	}
	if h.runs[len(h.runs)-1] != "dmsetup resume --noudevsync "+dmname {
		t.Errorf("the device was left suspended: %q", h.runs)
	}
}

func TestEIONeedsTheBlockExport(t *testing.T) {
	h, s := running(t)
	err := s.Fault(context.Background(), FaultEIO, true, FaultTarget{Path: "journal-1.log"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "--export-fs ext4") {
		t.Errorf("eio without a block export: %v", err)
	}
	if err := s.Fault(context.Background(), FaultEIO, false, FaultTarget{}); err != nil {
		t.Errorf("eio off without a block export: %v, want done", err)
	}
	if len(h.runs) != 0 {
		t.Errorf("ran %q", h.runs)
	}
	// A missing file is bad input, named.
	h, s = blockRunning(t)
	h.fail["stat -c"] = errors.New("exit status 1: stat: cannot statx 'x': No such file or directory")
	if err := s.Fault(context.Background(), FaultEIO, true, FaultTarget{Path: "nope.log"}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "nope.log") {
		t.Errorf("missing file: %v", err)
	}
}

func TestExt4ExportStartStop(t *testing.T) {
	h := newFakeHost()
	h.out[ns+"cat /proc/fs/nfsd/threads"] = "8\n"
	h.out["losetup --find --show "+img] = "/dev/loop3\n"
	s, err := NewNetns(NetnsConfig{ExportSize: 64 << 20, ExportFS: ExportExt4}, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"modprobe -a loop dm_mod",
		"truncate -s 67108864 " + img,
		"losetup --find --show " + img,
		"dmsetup create --noudevsync " + dmname + " --table 0 131072 linear /dev/loop3 0",
		"dmsetup mknodes " + dmname,
		"mkfs.ext4 -q -F -L nfslab-export -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/" + dmname,
		"mount -t ext4 /dev/mapper/" + dmname + " /run/nfslab/export/nfslab-nfsd",
	}
	i := slices.Index(h.runs, want[0])
	if i < 0 || len(h.runs) < i+len(want) || !reflect.DeepEqual(h.runs[i:i+len(want)], want) {
		t.Fatalf("start ran:\n%s\nwant in order:\n%s", strings.Join(h.runs, "\n"), strings.Join(want, "\n"))
	}
	if i > slices.Index(h.runs, "unshare --mount=/run/nfslab/nfsd/nfslab-nfsd/ns/mnt --propagation private true") {
		t.Error("the export was mounted after the server's mount namespace was made")
	}
	// Stop after a crash knows only the name: it finds the mount in
	// mountinfo and the image, and removes mount, dm device, loop in order.
	h.files["/proc/self/mountinfo"] = "40 25 254:0 / /run/nfslab/export/nfslab-nfsd rw,relatime shared:1 - ext4 /dev/mapper/" + dmname + " rw\n"
	h.files["/run/nfslab/export/nfslab-nfsd"] = ""
	h.files[img] = ""
	h.out["losetup --list --noheadings --output NAME --associated "+img] = "/dev/loop3\n"
	h.runs = nil
	s2, _ := NewNetns(NetnsConfig{}, h)
	if err := s2.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	order := []string{"umount /run/nfslab/export/nfslab-nfsd", "dmsetup remove --noudevsync --retry " + dmname, "losetup -d /dev/loop3"}
	last := -1
	for _, o := range order {
		j := slices.Index(h.runs, o)
		if j <= last {
			t.Fatalf("Stop ran:\n%s\nwant %q in this order", strings.Join(h.runs, "\n"), order)
		}
		last = j
	}
	// Again: the dm device is gone, which is done.
	h.fail["dmsetup remove"] = errors.New("exit status 1: device-mapper: remove ioctl on nfslab-nfsd-export  failed: No such device or address")
	h.files[img] = ""
	if err := s2.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	for _, bad := range []NetnsConfig{{ExportFS: "xfs", ExportSize: 64 << 20}, {ExportFS: ExportExt4, ExportSize: 8 << 20}} {
		if _, err := NewNetns(bad, h); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestRemoveBlockDevices(t *testing.T) {
	h := newFakeHost()
	h.files["/sys/module/dm_mod"] = ""
	h.out["dmsetup ls"] = "nfslab-nfsd-export\t(254:0)\nvg0-root\t(254:1)\nnfslab-x-export\t(254:2)\n"
	h.out["losetup --list --noheadings --output NAME,BACK-FILE"] = "/dev/loop0 /var/lib/snapd/snaps/core.snap\n/dev/loop3 /run/nfslab/nfsd/nfslab-nfsd/export.img (deleted)\n"
	h.fail["dmsetup remove --noudevsync --retry nfslab-x-export"] = errors.New("exit status 1: device-mapper: remove ioctl on nfslab-x-export failed: Device or resource busy")
	removed, err := RemoveBlockDevices(context.Background(), h, "/run/nfslab/nfsd")
	if want := []string{"dm nfslab-nfsd-export", "loop /dev/loop3 (/run/nfslab/nfsd/nfslab-nfsd/export.img)"}; !reflect.DeepEqual(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	if err == nil || !strings.Contains(err.Error(), "busy") {
		t.Errorf("err %v, want the busy device reported", err)
	}
	for _, r := range h.runs {
		if strings.Contains(r, "vg0-root") || strings.Contains(r, "loop0") {
			t.Errorf("touched a device that is not nfslab's: %s", r)
		}
	}
	// No device-mapper driver (the host kernel): nothing to do, no error.
	h = newFakeHost()
	if removed, err := RemoveBlockDevices(context.Background(), h, "/run/nfslab/nfsd"); err != nil || len(removed) != 0 {
		t.Errorf("without dm: %q %v", removed, err)
	}
}
