package podman

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/privtest"

	"github.com/nfslab/nfslab/pkg/container"
)

// TestRealZeebeImage runs a real broker where an image is in the machine's
// local podman storage. No registry is reachable on the development and CI
// machines, so there it skips, even under CI=true (the one test allowed to).
func TestRealZeebeImage(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "podman", "runc")
	ref := os.Getenv("NFSLAB_ZEEBE_IMAGE")
	if ref == "" {
		ref = container.DefaultZeebeImage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := cmdrun.Run(ctx, "podman", "image", "exists", ref); err != nil {
		privtest.SkipAlways(t, "no Zeebe image "+ref+" in local podman storage, and no registry is reachable here to pull one; "+
			"load one with `podman load -i zeebe.tar` or set NFSLAB_ZEEBE_IMAGE to run this test")
	}
	dir := t.TempDir()
	svc, err := StartService(ctx, ServiceOptions{Socket: filepath.Join(dir, "podman.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	rt, err := Connect(ctx, svc.URI)
	if err != nil {
		t.Fatal(err)
	}
	run := "test-real-zeebe"
	t.Cleanup(func() { _, _ = container.Cleanup(context.Background(), rt, container.CleanupOptions{RunID: run}) })
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o777); err != nil {
		t.Fatal(err)
	}
	// Host network: bridge networking would add firewall rules in the
	// machine's own namespace.
	z := container.ZeebeSpec{Name: "nfslt-zeebe", Image: ref, DataDir: data, Network: container.NetworkHost, RunID: run,
		LogSegmentSize: "16MB", SnapshotPeriod: "8h", CPUThreads: 2, IOThreads: 2}.WithDefaults()
	start := time.Now()
	if _, err := container.Run(ctx, rt, z.ContainerSpec()); err != nil {
		t.Fatal(err)
	}
	if err := container.WaitReady(ctx, z.ReadinessURL(), container.ReadyOptions{Timeout: 3 * time.Minute, Alive: container.AliveCheck(rt, z.Name)}); err != nil {
		t.Fatal(err)
	}
	var lines []string
	_ = rt.Logs(ctx, z.Name, container.LogOptions{}, func(l container.LogLine) { lines = append(lines, l.Text) })
	if !strings.Contains(strings.Join(lines, "\n"), "recovered, marking it as healthy") {
		t.Errorf("no partition recovery in %d log lines", len(lines))
	}
	t.Logf("zeebe %s ready in %s", ref, time.Since(start).Round(time.Second))
}
