//go:build scanguest

package scancost

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/cmdrun"
)

const (
	netns  = "nfslab-scancost"
	rounds = 3
	calls  = 10
)

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cmdrun.Run(ctx, name, args...); err != nil {
		t.Fatal(err)
	}
}

// timed runs argv calls times in the namespace and returns the mean.
func timed(t *testing.T, argv ...string) time.Duration {
	t.Helper()
	start := time.Now()
	for range calls {
		run(t, "ip", append([]string{"netns", "exec", netns}, argv...)...)
	}
	return time.Since(start) / calls
}

func TestScanCost(t *testing.T) {
	share := os.Getenv("NFSLAB_SHARE")
	if share == "" {
		t.Skip("a guest test: run it with nfslab vm run --test-binary (see doc.go)")
	}
	bins := map[string]string{"nfslab": filepath.Join(share, "bin", "nfslab")}
	if old := filepath.Join(share, "tests", "nfslab-old"); fileExists(old) {
		bins["nfslab-old"] = old
	}
	run(t, "ip", "netns", "add", netns)
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "exec", netns, bins["nfslab"], "heal", "--all", "--socket=").Run()
		_ = exec.Command("ip", "netns", "del", netns).Run()
	})
	run(t, "ip", "-n", netns, "link", "set", "lo", "up")
	run(t, "ip", "netns", "exec", netns, bins["nfslab"], "drop", "--dst", "10.1.2.3", "--for", "10m", "--no-verify", "--socket=")
	// The four commands of a scan; a chain the fault does not use is
	// missing (exit status 1), as the scan finds it.
	raw := []string{"sh", "-c", "iptables -t filter -v -S NFSLAB-OUTPUT >/dev/null || exit 1; iptables -t filter -v -S NFSLAB-INPUT; " +
		"ip6tables -t filter -v -S NFSLAB-OUTPUT; ip6tables -t filter -v -S NFSLAB-INPUT; true"}
	empty := []string{"true"}
	for r := 1; r <= rounds; r++ {
		base := timed(t, empty...)
		rawD := timed(t, raw...) - base
		line := ""
		for _, name := range []string{"nfslab", "nfslab-old"} {
			bin, ok := bins[name]
			if !ok {
				continue
			}
			d := timed(t, bin, "status", "--socket=") - base
			line += " " + name + " " + d.Round(time.Millisecond).String() + " (" + ratio(d, rawD) + "× raw)"
		}
		t.Logf("round %d: per call, less `ip netns exec true` (%v): raw 4× iptables -v -S %v;%s", r,
			base.Round(time.Millisecond), rawD.Round(time.Millisecond), line)
	}
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f", float64(a)/float64(b))
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
