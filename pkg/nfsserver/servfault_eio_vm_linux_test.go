//go:build linux && nfsguest

package nfsserver

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/pkg/mount"
)

// TestServerEIOReal fails the server's disk under a real soft NFSv4.2
// mount in the lab VM: the export is ext4 on a loop device through
// nfslab's dm device, and FaultEIO maps a file's sectors (from its byte
// 4096 on) to the dm error target. A write there fails at the client's
// fsync with EIO (knfsd's COMMIT writes back to sectors that fail), a
// cold read of a failing page fails with EIO while the page before it
// still reads, and after EIO off both work again. Stop removes the mount,
// the dm device and the loop device.
func TestServerEIOReal(t *testing.T) {
	if !kernelHasNFS() {
		privtest.Skip(t, "this kernel has no NFS client/server; the test runs in the lab VM (Debian guest with nfs-kernel-server)")
	}
	privtest.Tools(t, "dmsetup", "losetup", "mkfs.ext4", "filefrag", "fallocate", "blockdev")
	ctx := context.Background()
	s, target := startAndMount(t, NetnsConfig{ExportSize: 64 << 20, ExportFS: ExportExt4,
		ExportDir: filepath.Join(DefaultExport, "nfslt-eio-"+filepath.Base(t.TempDir()))})
	dm := s.Config().dmName()
	page := bytes.Repeat([]byte("nfslab-eio-page\n"), 4096/16)
	f, err := os.OpenFile(filepath.Join(target, "journal-1.log"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// bounded runs fn with a bound (a soft mount answers within seconds).
	bounded := func(fn func() error) (time.Duration, error) {
		start := time.Now()
		err := mount.WithTimeout(ctx, 60*time.Second, fn)
		return time.Since(start), err
	}
	writeSync := func(off int64) (time.Duration, error) {
		return bounded(func() error {
			if _, err := f.WriteAt(page, off); err != nil {
				return err
			}
			return f.Sync()
		})
	}
	// 4 pages written; a 1 MiB file, sparse after them.
	for i := int64(0); i < 4; i++ {
		if _, err := writeSync(i * 4096); err != nil {
			t.Fatalf("baseline write of page %d: %v", i, err)
		}
	}
	if err := f.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := s.Fault(ctx, FaultEIO, true, FaultTarget{Path: "journal-1.log", Blocks: "8-"}); err != nil {
		t.Fatalf("eio on: %v", err)
	}
	t.Logf("MEASURED eio on (fallocate, filefrag, dmsetup suspend/load/resume) took %s", time.Since(t0))
	if tbl, err := NewHost().Run(ctx, "dmsetup", "table", dm); err != nil || !bytes.Contains(tbl, []byte(" error")) {
		t.Fatalf("dmsetup table %s: %q %v, want error lines", dm, tbl, err)
	} else {
		t.Logf("table under eio:\n%s", tbl)
	}
	// 1. A write into the hole (page 10) and into a written page (page 2).
	for _, pg := range []int64{10, 2} {
		d, err := writeSync(pg * 4096)
		t.Logf("MEASURED eio write: page %d write+fsync took %s, err %v (errno %s)", pg, d, err, errnoName(err))
		if !errors.Is(err, unix.EIO) {
			t.Errorf("write+fsync of page %d under eio: %v, want EIO", pg, err)
		}
	}
	// 2. A cold read: the client's and the server's caches dropped (the
	// lab VM is nfslab's own machine).
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200); err != nil {
		t.Fatal(err)
	}
	g, err := os.Open(filepath.Join(target, "journal-1.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	buf := make([]byte, 4096)
	// Page 0 through O_DIRECT, one 4 KiB READ: it shows that only the
	// chosen sectors fail. A buffered read caches page 0 in a folio, and on
	// kernel 6.12 (trixie) the NFS client's first folios are 16 KiB: the
	// server answers page 0 (a short READ) but pages 1-3 fail, so the folio
	// never becomes uptodate and the read of page 0 fails too (traced in
	// the VM; 6.1 caches 4 KiB pages). nfs-server-eio therefore fails its
	// segment from byte 128 KiB on, past the first readahead window.
	direct, err := os.OpenFile(filepath.Join(target, "journal-1.log"), os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	d, err := bounded(func() error { _, err := direct.ReadAt(buf, 0); return err })
	t.Logf("MEASURED eio cold read: page 0 (outside the range, O_DIRECT) %s err %v", d, err)
	if err != nil || !bytes.Equal(buf, page) {
		t.Errorf("cold read of page 0, outside the failing sectors: %v", err)
	}
	d, err = bounded(func() error { _, err := g.ReadAt(buf, 3*4096); return err })
	t.Logf("MEASURED eio cold read: page 3 %s err %v (errno %s)", d, err, errnoName(err))
	if !errors.Is(err, unix.EIO) {
		t.Errorf("cold read of page 3 under eio: %v, want EIO", err)
	}
	// 3. Off: the whole device linear again; writes and reads work.
	t1 := time.Now()
	if err := s.Fault(ctx, FaultEIO, false, FaultTarget{}); err != nil {
		t.Fatalf("eio off: %v", err)
	}
	t.Logf("MEASURED eio off took %s", time.Since(t1))
	var werr error
	for i := 0; i < 3; i++ { // the error is reported once per open file
		if _, werr = writeSync(10 * 4096); werr == nil {
			break
		}
		t.Logf("write+fsync after eio off, attempt %d: %v", i+1, werr)
	}
	if werr != nil {
		t.Errorf("write+fsync after eio off: %v, want success", werr)
	}
	h, err := os.OpenFile(filepath.Join(target, "journal-2.log"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bounded(func() error {
		if _, err := h.WriteAt(page, 0); err != nil {
			return err
		}
		return h.Sync()
	})
	h.Close()
	if err != nil {
		t.Errorf("write+fsync of a new file after eio off: %v", err)
	}
	if _, err := bounded(func() error { _, err := g.ReadAt(buf, 3*4096); return err }); err != nil {
		t.Errorf("read of page 3 after eio off: %v", err)
	}
	f.Close()
	g.Close()
	// Stop (as heal does) leaves no dm or loop device.
	m := mount.NewLinux(mount.LinuxOptions{})
	if _, err := m.Unmount(ctx, target, mount.UnmountOptions{Timeout: 20 * time.Second}); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if out, _ := NewHost().Run(ctx, "dmsetup", "ls"); bytes.Contains(out, []byte(dm)) {
		t.Errorf("dm device %s left after Stop: %s", dm, out)
	}
	if out, _ := NewHost().Run(ctx, "losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"); bytes.Contains(out, []byte(s.Config().StateDir)) {
		t.Errorf("loop device left after Stop: %s", out)
	}
}
