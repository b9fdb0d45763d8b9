//go:build linux && nfsguest

package vm

import (
	"os"
	"path/filepath"
	"testing"
)

// firstBoot reports whether this is the first boot to run the calling
// guest test, which ends the guest on purpose: a marker named name on the
// share, which outlives the guest, tells the boots apart. It creates the
// marker, synced, on the first.
func firstBoot(t *testing.T, name string) bool {
	t.Helper()
	if _, err := os.Stat(filepath.Join(GuestShare, JobFile)); err != nil {
		t.Fatalf("not in the lab VM (this test ends the guest): %v", err)
	}
	marker := filepath.Join(GuestShare, name)
	if _, err := os.Stat(marker); err == nil {
		t.Logf("second boot: %s is there", marker)
		return false
	}
	f, err := os.Create(marker)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	return true
}
