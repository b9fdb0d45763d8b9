package client

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A re-executed test binary plays the reaper: it records its session and
// arguments so the test can check that it was detached.
func TestMain(m *testing.M) {
	if out := os.Getenv("NFSLAB_TEST_REAPER_OUT"); out != "" && len(os.Args) > 1 && os.Args[1] == ExpireCommand {
		sid, _ := unix.Getsid(0)
		fi, _ := os.Stdin.Stat()
		null := fi != nil && fi.Mode()&os.ModeCharDevice != 0
		_ = os.WriteFile(out, []byte(fmt.Sprintf("%d %d %v %s", os.Getpid(), sid, null, strings.Join(os.Args[1:], " "))), 0o600)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSpawnReaperDetaches(t *testing.T) {
	out := filepath.Join(t.TempDir(), "reaper")
	t.Setenv("NFSLAB_TEST_REAPER_OUT", out)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	at := t0
	pid, err := spawnReaper(self, "f1", "labns", t0.Add(-time.Minute), at)
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	for range 500 {
		if data, err = os.ReadFile(out); err == nil && len(data) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var gotPid, sid int
	var null bool
	var rest string
	n, _ := fmt.Sscanf(string(data), "%d %d %v", &gotPid, &sid, &null)
	if i := strings.Index(string(data), "expire"); i >= 0 {
		rest = string(data)[i:]
	}
	if n != 3 || gotPid != pid || sid != pid || !null {
		t.Fatalf("reaper reported %q: want pid %d as its own session leader with stdin on /dev/null", data, pid)
	}
	if want := "expire --id f1 --created " + t0.Add(-time.Minute).Format(time.RFC3339Nano) + " --netns labns --at " + at.Format(time.RFC3339Nano); rest != want {
		t.Fatalf("reaper args %q, want %q", rest, want)
	}
}
