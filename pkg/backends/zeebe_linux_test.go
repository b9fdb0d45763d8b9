package backends

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/nfslab/nfslab/pkg/container"
	"github.com/nfslab/nfslab/pkg/duration"
	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/engine/enginetest"
	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/scenario"
	"github.com/nfslab/nfslab/pkg/zeebe"
	"github.com/nfslab/nfslab/pkg/zeebe/cluster"
	"github.com/nfslab/nfslab/pkg/zeebe/cluster/clustertest"
	"github.com/nfslab/nfslab/pkg/zeebe/zeebetest"
)

// hookFaults is the in-memory injector with hooks standing in for the
// kernel's effect on the brokers.
type hookFaults struct {
	enginetest.Faults
	mu      sync.Mutex
	applied []netfault.Spec
	onApply func(netfault.Spec)
	onHeal  func()
}

func (f *hookFaults) Apply(ctx context.Context, s netfault.Spec) (netfault.Fault, error) {
	x, err := f.Faults.Apply(ctx, s)
	if err == nil {
		f.mu.Lock()
		f.applied = append(f.applied, s)
		f.mu.Unlock()
		if f.onApply != nil {
			f.onApply(s)
		}
	}
	return x, err
}

func (f *hookFaults) Heal(ctx context.Context, ns, id string) error {
	err := f.Faults.Heal(ctx, ns, id)
	if err == nil && f.onHeal != nil && f.Count() == 0 {
		f.onHeal()
	}
	return err
}

func (f *hookFaults) specs() []netfault.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]netfault.Spec(nil), f.applied...)
}

func executeZeebe(t *testing.T, lab *clustertest.Lab, sc *scenario.Scenario, faults *hookFaults) *Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run, err := Execute(ctx, sc, t.TempDir(), 0, engine.Options{SampleEvery: 100 * time.Millisecond},
		func(ctx context.Context, dir string) (engine.Backends, error) {
			return Build(ctx, sc, Config{RunDir: dir, Zeebe: lab.Options(),
				Faults: func(context.Context) (netfault.Faults, error) { return faults, nil }})
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func readJournal(t *testing.T, dir string) []journal.Record {
	t.Helper()
	recs, err := journal.ReadFile(filepath.Join(dir, journal.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// The seed's msync failure as a broker prints it.
var msyncLines = []string{
	"[2025-06-12 09:02:00.819] [raft-server-0-1] [{actor-name=raft-server-1, actor-scheduler=Broker-0, partitionId=1, raft-role=LEADER}] ERROR",
	"        io.atomix.raft.impl.RaftContext - An uncaught exception occurred, transition to inactive role",
	"java.io.UncheckedIOException: java.io.IOException: Input/output error (msync with parameter MS_SYNC failed)",
	"        at java.base/java.nio.MappedMemoryUtils.force(Unknown Source) ~[?:?]",
	"        at io.camunda.zeebe.journal.file.Segment.flush(Segment.java:125) ~[zeebe-journal-8.7.5.jar:8.7.5]",
	"Caused by: java.io.IOException: Input/output error (msync with parameter MS_SYNC failed)",
	"        at java.base/java.nio.MappedMemoryUtils.force0(Native Method) ~[?:?]",
}

var sigbusLines = []string{
	"#",
	"# A fatal error has been detected by the Java Runtime Environment:",
	"#",
	"#  SIGBUS (0x7) at pc=0x00007f89ec4601a5, pid=2, tid=49",
	"#",
	"# Problematic frame:",
	"# v  ~StubRoutines::updateBytesCRC32C",
	"#",
	"# An error report file with more information is saved as:",
	"# /usr/local/zeebe/hs_err_pid2.log",
}

// A full drop on the NFS port: the broker's log shows the msync
// IOException, the client's creations time out, the JVM dies of SIGBUS
// (exit 134) and its hs_err report lands in the run's logs; the rollback
// removes the broker.
func TestZeebeTargetFullDrop(t *testing.T) {
	lab := clustertest.New(t, 1)
	sc, err := scenario.Decode([]byte(`metadata: {name: zeebe-drop}
duration: 20s
storage: {kind: local}
target: {kind: zeebe, zeebe: {image: gcr.io/zeebe-io/zeebe:8.7.5-root}}
load: {kind: zeebe, rate: 20}
timeline:
  - {id: drop, at: 700ms, for: 1s, action: drop, fault: {dst: 127.0.0.1, port: 2049}}
expectations:
  - {kind: detector-fires, detector: msync-ioexception, after: drop, within: 5s}
  - {kind: detector-fires, detector: jvm-sigbus, after: drop, within: 5s}
  - {kind: errors-appear, code: DeadlineExceeded, after: drop, within: 5s}
  - {kind: detector-fires, detector: deadline-exceeded, after: drop, within: 5s}
  - {kind: exit-code, exit_code: 134, after: drop, within: 5s}
`))
	if err != nil {
		t.Fatal(err)
	}
	var broker string
	faults := &hookFaults{}
	faults.onApply = func(netfault.Spec) {
		infos, _ := lab.RT.List(context.Background(), map[string]string{container.LabelRole: container.RoleZeebe})
		if len(infos) != 1 {
			t.Errorf("%d broker containers, want 1", len(infos))
			return
		}
		broker = infos[0].Name
		lab.GW.Fail(zeebetest.Create, codes.DeadlineExceeded, 5, 0)
		go func() {
			// What the kernel's EIO does to the broker, then the replay's SIGBUS.
			_ = lab.RT.AddLog(broker, container.Stdout, msyncLines...)
			time.Sleep(300 * time.Millisecond)
			_ = lab.RT.PutFile(broker, "/usr/local/zeebe/hs_err_pid2.log", []byte("# SIGBUS (0x7)\n"))
			_ = lab.RT.AddLog(broker, container.Stdout, sigbusLines...)
			time.Sleep(300 * time.Millisecond)
			_ = lab.RT.Exit(broker, 134)
		}()
	}
	run := executeZeebe(t, lab, sc, faults)
	if !run.Result.Passed {
		t.Fatalf("run failed: %s\n%v", run.Result.Reason, run.Result.Verdicts)
	}
	spec, err := lab.RT.SpecOf(broker)
	if err == nil {
		t.Errorf("broker %s still exists after the rollback: %+v", broker, spec)
	}
	if left, _ := container.ListOwned(context.Background(), lab.RT, ""); len(left) != 0 {
		t.Errorf("containers left: %+v", left)
	}
	hs, err := os.ReadFile(filepath.Join(run.Dir, "logs", broker+"-hs_err_pid2.log"))
	if err != nil || !strings.Contains(string(hs), "SIGBUS") {
		t.Errorf("hs_err report not copied: %v %q", err, hs)
	}
	blog, err := os.ReadFile(filepath.Join(run.Dir, "logs", "broker-0.log"))
	if err != nil || !strings.Contains(string(blog), "msync with parameter MS_SYNC failed") {
		t.Errorf("broker log not written: %v", err)
	}
	var samples, created int
	for _, r := range readJournal(t, run.Dir) {
		if r.Type == journal.TypeLoadSample {
			samples++
			created += r.Load.Created
		}
	}
	if samples < 3 || created == 0 {
		t.Errorf("%d load samples with %d creations: the load did not run against the gateway", samples, created)
	}
}

// scaleTimes shrinks every duration of sc by div, so a shipped scenario's
// minutes run in seconds against fakes.
func scaleTimes(sc *scenario.Scenario, div int64) {
	s := func(d *duration.Duration) { *d = duration.Duration(int64(*d) / div) }
	s(&sc.Duration)
	s(&sc.Load.DeployEvery)
	for i := range sc.Timeline {
		st := &sc.Timeline[i]
		if st.At != nil {
			s(st.At)
		}
		s(&st.Delay)
		s(&st.For)
	}
	for i := range sc.Expectations {
		e := &sc.Expectations[i]
		s(&e.Within)
		s(&e.Settle)
		s(&e.Baseline)
	}
}

// Seed 001 against fakes: three brokers in one cluster on the bridge, the
// leaders of partitions 1 and 3 (from the gateway's topology: broker 0 and
// broker 2, as in the seed) get unreachable routes to each other inside
// their own network namespaces; while they are cut, creations on
// partition 3 are rejected with NOT_FOUND; after the heal instances are
// created on partition 3 again, judged from the load's per-partition
// samples (key >> 51).
func TestZeebeBrokerUnreachable(t *testing.T) {
	sc, err := scenario.LoadFile(filepath.Join("..", "..", "scenarios", "broker-unreachable.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	scaleTimes(sc, 60) // 8m -> 8s; the fault at 1s for 4s
	sc.Load.Rate *= 6  // enough creations per 100ms sample for each partition
	lab := clustertest.New(t, 3)
	top := zeebe.Topology{ClusterSize: 3, PartitionsCount: 3, ReplicationFactor: 3}
	roles := [3][3]string{{"LEADER", "LEADER", "FOLLOWER"}, {"FOLLOWER", "FOLLOWER", "FOLLOWER"}, {"FOLLOWER", "FOLLOWER", "LEADER"}}
	for n := int32(0); n < 3; n++ {
		b := zeebe.Broker{NodeID: n, Port: 26501}
		for p := int32(1); p <= 3; p++ {
			b.Partitions = append(b.Partitions, zeebe.PartitionInfo{ID: p, Role: roles[n][p-1], Health: "HEALTHY"})
		}
		top.Brokers = append(top.Brokers, b)
	}
	lab.Topology = &top

	specs := map[string]container.Spec{}
	faults := &hookFaults{}
	var once sync.Once
	faults.onApply = func(s netfault.Spec) {
		once.Do(func() {
			infos, _ := lab.RT.List(context.Background(), map[string]string{container.LabelRole: container.RoleZeebe})
			for _, in := range infos {
				specs[in.Name], _ = lab.RT.SpecOf(in.Name)
			}
		})
		// What the two routes do to Zeebe: the deployment cannot reach partition 3.
		lab.GW.NotDeployedOn(3)
	}
	faults.onHeal = func() { lab.GW.NotDeployedOn() }
	run := executeZeebe(t, lab, sc, faults)
	if !run.Result.Passed {
		t.Fatalf("run failed: %s\n%+v", run.Result.Reason, run.Result.Verdicts)
	}
	runID := filepath.Base(run.Dir)

	// Three brokers in one cluster, joined through the earlier ones.
	if len(specs) != 3 {
		t.Fatalf("%d broker containers, want 3", len(specs))
	}
	for n := 0; n < 3; n++ {
		sp, ok := specs[cluster.BrokerName(runID, n)]
		if !ok {
			t.Fatalf("no container %s", cluster.BrokerName(runID, n))
		}
		if sp.Network != "" && sp.Network != container.NetworkBridge {
			t.Errorf("broker %d network %q, want bridge", n, sp.Network)
		}
		want := map[string]string{"ZEEBE_BROKER_CLUSTER_NODEID": string(rune('0' + n)), "ZEEBE_BROKER_CLUSTER_CLUSTERSIZE": "3",
			"ZEEBE_BROKER_CLUSTER_PARTITIONSCOUNT": "3", "ZEEBE_BROKER_CLUSTER_REPLICATIONFACTOR": "3"}
		for k, v := range want {
			if sp.Env[k] != v {
				t.Errorf("broker %d: %s=%q, want %q", n, k, sp.Env[k], v)
			}
		}
		contacts := []string{"", "10.88.0.10:26502", "10.88.0.10:26502,10.88.0.11:26502"}[n]
		if sp.Env["ZEEBE_BROKER_CLUSTER_INITIALCONTACTPOINTS"] != contacts {
			t.Errorf("broker %d contact points %q, want %q", n, sp.Env["ZEEBE_BROKER_CLUSTER_INITIALCONTACTPOINTS"], contacts)
		}
		if len(sp.Ports) != 2 || int(sp.Ports[0].HostPort) != 26500+n || sp.Ports[0].HostIP != "127.0.0.1" {
			t.Errorf("broker %d ports %+v", n, sp.Ports)
		}
	}

	// $leader:1 is broker 0 and $leader:3 broker 2: each route is in the
	// other's namespace.
	got := map[string]string{}
	for _, s := range faults.specs() {
		if s.Kind != netfault.KindUnreachable || s.RouteType != netfault.RouteUnreachable {
			t.Errorf("fault %+v, want an unreachable route", s)
		}
		got[s.Netns] = s.Dst
	}
	want := map[string]string{
		container.NetnsName(cluster.BrokerName(runID, 0)): "10.88.0.12",
		container.NetnsName(cluster.BrokerName(runID, 2)): "10.88.0.10",
	}
	if len(got) != 2 || got[container.NetnsName(cluster.BrokerName(runID, 0))] != want[container.NetnsName(cluster.BrokerName(runID, 0))] ||
		got[container.NetnsName(cluster.BrokerName(runID, 2))] != want[container.NetnsName(cluster.BrokerName(runID, 2))] {
		t.Errorf("routes (netns -> dst) %v, want %v", got, want)
	}

	// Partition 3 got nothing while cut, and something before and after.
	var before, during, after int
	var faultAt, healAt time.Time
	for _, r := range readJournal(t, run.Dir) {
		switch r.Type {
		case journal.TypeFaultApplied:
			if faultAt.IsZero() {
				faultAt = r.Time
			}
		case journal.TypeFaultHealed:
			healAt = r.Time
		case journal.TypeLoadSample:
			n := r.Load.ByPartition[3]
			switch {
			case faultAt.IsZero():
				before += n
			case healAt.IsZero():
				if r.Load.T.Sub(faultAt) > 200*time.Millisecond {
					during += n
				}
			default:
				after += n
			}
		}
	}
	if before == 0 || during != 0 || after == 0 {
		t.Errorf("partition 3 creations before/during/after the cut: %d/%d/%d, want >0/0/>0", before, during, after)
	}
	if left, _ := container.ListOwned(context.Background(), lab.RT, ""); len(left) != 0 {
		t.Errorf("containers left: %+v", left)
	}
}

// --set target.kind=zeebe on an NFS scenario builds a broker target and
// its load without touching anything; a missing podman service is a
// setup error that says so.
func TestZeebeBuildFromNFSScenario(t *testing.T) {
	sc, err := scenario.LoadFile(filepath.Join("..", "..", "scenarios", "nfs-full-drop.yaml"), "target.kind=zeebe")
	if err != nil {
		t.Fatal(err)
	}
	lab := clustertest.New(t, 1)
	dir := t.TempDir()
	b, err := Build(context.Background(), sc, Config{RunDir: dir, Zeebe: lab.Options(),
		Faults: func(context.Context) (netfault.Faults, error) { return &enginetest.Faults{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	zt, ok := b.Target.(*cluster.Target)
	if !ok || zt.Network != container.NetworkHost || zt.GatewayAddr() != "127.0.0.1:26500" {
		t.Fatalf("target %T %+v", b.Target, b.Target)
	}
	if _, ok := b.Load.(*cluster.Load); !ok {
		t.Fatalf("load %T", b.Load)
	}
	if len(lab.RT.Calls) != 0 {
		t.Errorf("Build touched the runtime: %v", lab.RT.Calls)
	}
	opts := lab.Options()
	opts.Runtime = func(context.Context) (container.Runtime, error) { return nil, container.ErrNoService }
	_, err = Build(context.Background(), sc, Config{RunDir: dir, Zeebe: opts,
		Faults: func(context.Context) (netfault.Faults, error) { return &enginetest.Faults{}, nil }})
	if err == nil || !strings.Contains(err.Error(), "podman") {
		t.Fatalf("err %v, want one naming podman", err)
	}
}
