//go:build linux && nfsguest

package nfsserver

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/privtest"
)

// TestEIOCommandsReal runs the eio commands of docs/storage.md as written,
// through the nfslab binary of the lab VM's share (NFSLAB_BIN overrides):
// the ext4 export, a mount, a file, eio on a file for a while, eio on
// device sectors, eio-off, a bad input (exit 2, nothing applied), and
// heal --all leaving no dm or loop device.
func TestEIOCommandsReal(t *testing.T) {
	if !kernelHasNFS() {
		privtest.Skip(t, "this kernel has no NFS client/server; the test runs in the lab VM (Debian guest with nfs-kernel-server)")
	}
	privtest.Root(t)
	bin := os.Getenv("NFSLAB_BIN")
	if bin == "" {
		bin = "/mnt/nfslab/bin/nfslab"
	}
	if _, err := os.Stat(bin); err != nil {
		privtest.Skip(t, "no nfslab binary at "+bin+" (set NFSLAB_BIN)")
	}
	run := func(want int, name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		path := name
		if name == "nfslab" {
			path = bin
		}
		out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
		}
		t.Logf("$ %s %s -> exit %d\n%s", name, strings.Join(args, " "), code, out)
		if code != want {
			t.Fatalf("%s %s: exit %d, want %d:\n%s", name, strings.Join(args, " "), code, want, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		out, err := exec.Command(bin, "heal", "--all").CombinedOutput()
		t.Logf("$ nfslab heal --all: %v\n%s", err, out)
	})
	run(0, "nfslab", "nfs-server", "start", "--export-size", "256MB", "--export-fs", "ext4")
	run(0, "nfslab", "mount", "10.213.0.2:/run/nfslab/export/nfslab-nfsd", "zeebe")
	run(0, "dd", "if=/dev/urandom", "of=/run/nfslab/mnt/zeebe/journal-1.log", "bs=1M", "count=4", "conv=fsync")
	out := run(0, "nfslab", "nfs-server", "eio", "--path", "journal-1.log", "--blocks", "8-", "--for", "3s")
	if !strings.Contains(out, "eio on") || !strings.Contains(out, "eio off after") {
		t.Errorf("eio --for printed %q, want on and off", out)
	}
	run(0, "nfslab", "nfs-server", "eio", "--blocks", "0-7")
	if tbl := run(0, "dmsetup", "table", "nfslab-nfsd-export"); !strings.HasPrefix(tbl, "0 8 error") {
		t.Errorf("table after eio --blocks 0-7: %q", tbl)
	}
	run(0, "nfslab", "nfs-server", "eio-off")
	if tbl := run(0, "dmsetup", "table", "nfslab-nfsd-export"); strings.Contains(tbl, "error") || strings.Count(tbl, "\n") != 1 {
		t.Errorf("table after eio-off: %q, want one linear line", tbl)
	}
	// Bad input: exit 2 naming the value, the table untouched.
	if out := run(2, "nfslab", "nfs-server", "eio", "--path", "../etc/passwd"); !strings.Contains(out, `"../etc/passwd"`) {
		t.Errorf("bad path: %q", out)
	}
	if out := run(2, "nfslab", "nfs-server", "eio", "--path", "nope.log"); !strings.Contains(out, "nope.log") {
		t.Errorf("missing file: %q", out)
	}
	run(0, "nfslab", "umount", "zeebe", "--timeout", "10s")
	run(0, "nfslab", "nfs-server", "stop")
	// Start again and leave it to heal --all, as after a crash.
	run(0, "nfslab", "nfs-server", "start", "--export-size", "64MB", "--export-fs", "ext4")
	run(0, "nfslab", "heal", "--all")
	if out := run(0, "dmsetup", "ls"); strings.Contains(out, "nfslab-") {
		t.Errorf("dm device left after heal --all: %s", out)
	}
	if out := run(0, "losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"); bytes.Contains([]byte(out), []byte("/run/nfslab/")) {
		t.Errorf("loop device left after heal --all: %s", out)
	}
}
