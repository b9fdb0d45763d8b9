package cluster_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/scenario"
	"github.com/nfslab/nfslab/pkg/zeebe/cluster"
	"github.com/nfslab/nfslab/pkg/zeebe/cluster/clustertest"
)

// The broker's container spec: host networking for one broker, the data
// directory bind-mounted, the run's labels, loopback-only binding.
func TestZeebeTargetSingleBrokerSpec(t *testing.T) {
	lab := clustertest.New(t, 1)
	dir := t.TempDir()
	zt := cluster.NewTarget(scenario.ZeebeTarget{Env: map[string]string{"ZEEBE_BROKER_DATA_LOGSEGMENTSIZE": "16MB"}}, "run-1", dir, lab.RT, lab.Options(), nil, nil)
	ctx := context.Background()
	if err := zt.Start(ctx, dir); err != nil {
		t.Fatal(err)
	}
	spec, err := lab.RT.SpecOf(cluster.BrokerName("run-1", 0))
	if err != nil {
		t.Fatal(err)
	}
	if spec.Network != container.NetworkHost || len(spec.Ports) != 0 {
		t.Errorf("network %q ports %v, want host and none published", spec.Network, spec.Ports)
	}
	if spec.Labels[container.LabelRun] != "run-1" || spec.Labels[container.LabelRole] != container.RoleZeebe {
		t.Errorf("labels %v", spec.Labels)
	}
	if len(spec.Mounts) != 1 || spec.Mounts[0].Source != dir || spec.Mounts[0].Target != container.ZeebeDataDir {
		t.Errorf("mounts %v", spec.Mounts)
	}
	if spec.Env["ZEEBE_BROKER_NETWORK_HOST"] != "127.0.0.1" || spec.Env["ZEEBE_BROKER_DATA_LOGSEGMENTSIZE"] != "16MB" {
		t.Errorf("env %v", spec.Env)
	}
	if _, err := zt.Netns(ctx, "broker-0"); err == nil {
		t.Error("Netns of a host-network broker must refuse: a route there would cut the machine")
	}
	if ip, err := zt.Resolve(ctx, "$broker:0"); err != nil || ip != "127.0.0.1" {
		t.Errorf("$broker:0 = %q, %v", ip, err)
	}
	// pause/unpause/restart act on the container; restart's exit is not reported.
	for _, a := range []string{scenario.ActionPause, scenario.ActionUnpause, scenario.ActionRestart} {
		if err := zt.Control(ctx, a, ""); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	if err := zt.Control(ctx, scenario.ActionKill, "broker-0"); err != nil {
		t.Fatal(err)
	}
	select {
	case x := <-zt.Exited():
		if x.Code != 137 || x.Name != "broker-0" || x.Signal != "SIGKILL" {
			t.Errorf("exit %+v", x)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the kill's exit was not reported")
	}
	select {
	case x := <-zt.Exited():
		t.Errorf("unexpected second exit %+v (the restart's own?)", x)
	default:
	}
	if err := zt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if left, _ := container.ListOwned(ctx, lab.RT, "run-1"); len(left) != 0 {
		t.Errorf("left %v", left)
	}
}

// A missing image is pulled through the one policy, its progress kept in
// the run's logs/pull.log; a present one leaves no pull.log.
func TestTargetPullsMissingImageOnce(t *testing.T) {
	lab := clustertest.New(t, 1)
	const img = "camunda/zeebe:8.7.5"
	dir := t.TempDir()
	zt := cluster.NewTarget(scenario.ZeebeTarget{Image: img}, "run-pull", dir, lab.RT, lab.Options(), nil, nil)
	ctx := context.Background()
	if err := zt.Start(ctx, dir); err != nil {
		t.Fatal(err)
	}
	defer zt.Close(ctx)
	n := 0
	for _, c := range lab.RT.Calls {
		if c == "pull "+img {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d pulls of %s, want 1: %v", n, img, lab.RT.Calls)
	}
	pl, err := os.ReadFile(filepath.Join(dir, "pull.log"))
	if err != nil || !strings.Contains(string(pl), img) {
		t.Errorf("pull.log: %v %q", err, pl)
	}

	dir2 := t.TempDir()
	zt2 := cluster.NewTarget(scenario.ZeebeTarget{}, "run-present", dir2, lab.RT, lab.Options(), nil, nil)
	if err := zt2.Start(ctx, dir2); err != nil {
		t.Fatal(err)
	}
	defer zt2.Close(ctx)
	if _, err := os.Stat(filepath.Join(dir2, "pull.log")); err == nil {
		t.Error("pull.log written for an image already present")
	}
}

// A missing image where no registry answers fails Start with the image's
// name and the scenario's own way out, and starts no broker.
func TestTargetNoRegistry(t *testing.T) {
	lab := clustertest.New(t, 1)
	lab.RT.PullErr = errors.New("pinging container registry: no such host")
	dir := t.TempDir()
	zt := cluster.NewTarget(scenario.ZeebeTarget{Image: "example.org/zeebe:none"}, "run-noreg", dir, lab.RT, lab.Options(), nil, nil)
	err := zt.Start(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "example.org/zeebe:none") || !strings.Contains(err.Error(), "target.zeebe.image") {
		t.Fatalf("err %v", err)
	}
	if left, _ := container.ListOwned(context.Background(), lab.RT, ""); len(left) != 0 {
		t.Errorf("containers started without an image: %v", left)
	}
	_ = zt.Close(context.Background())
}
