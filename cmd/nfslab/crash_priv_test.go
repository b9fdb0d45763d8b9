package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/cleanup"
	"github.com/nfslab/nfslab/pkg/mount"
)

// crashInnerEnv marks the test binary re-executed inside the private mount
// and network namespaces the crash test runs in.
const crashInnerEnv = "NFSLAB_CRASH_INNER"

// crashTrials bounds the test (about 2 minutes). The shortened scenario
// sets its EIO rule 4 s into the timeline for 20 s; the JVM meets the
// rule within milliseconds and exits, so kills are of three kinds: at a
// random time before the rule, 0-20 ms after the run prints that the rule
// is set (the JVM still runs, in msync: the worst case), and at a
// random time while the rule stays set.
const crashTrials = 10

// TestPrivCrashedRunLeavesNothing SIGKILLs `nfslab run` of a faultfs
// scenario at random points (before and during its fault), then runs
// `nfslab heal --all`: no faultfs mount, no JVM, no record, no rule, no
// route and no namespace name may stay. It runs in a private mount and network namespace (so
// fusectl, the FUSE mounts and heal's sweep of the namespace touch only
// the test's) with NFSLAB_ROOT in a temporary directory (so heal --all
// sweeps only what this test made; other tests share /run/nfslab).
//
// NFSLAB_BIN names the nfslab binary to test; by default the test binary
// itself acts as nfslab (TestMain).
func TestPrivCrashedRunLeavesNothing(t *testing.T) {
	privtest.Short(t)
	privtest.Root(t)
	privtest.FUSE(t)
	privtest.Tools(t, "unshare", "java", "javac", "iptables-save", "ip")
	if os.Getenv(crashInnerEnv) == "" {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		// Equivalent to: unshare --mount --propagation private --net -- TEST -test.run=^NAME$
		cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "--net", "--",
			self, "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), crashInnerEnv+"=1", asMainEnv+"=0")
		out, err := cmd.CombinedOutput()
		t.Logf("inside private namespaces:\n%s", out)
		if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
			t.Fatalf("crash trials failed: %v", err)
		}
		return
	}
	crashTrialsInside(t)
}

func crashTrialsInside(t *testing.T) {
	bin := os.Getenv("NFSLAB_BIN")
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			t.Fatal(err)
		}
	}
	base, err := os.MkdirTemp("", "nfslt-crash")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	root := filepath.Join(base, "root")
	sc, err := os.ReadFile("../../scenarios/faultfs-full-drop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	short := string(sc)
	for _, r := range [][2]string{{"duration: 1m30s", "duration: 30s"}, {"at: 10s", "at: 4s"}, {"for: 1m", "for: 20s"}, {"within: 1m", "within: 20s"}} {
		if !strings.Contains(short, r[0]) {
			t.Fatalf("scenario changed: %q not found; update the shortened copy", r[0])
		}
		short = strings.Replace(short, r[0], r[1], 1)
	}
	// The shipped expectation has its verdict 15 ms after the rule and the
	// run ends there; this one keeps the run (and the rule) for 20 s.
	short += `  - name: the run lasts while the rule is set (a test of crashes, not of the verdict)
    kind: detector-absent
    detector: jvm-sigbus
    after: fail-writes
    within: 20s
`
	scPath := filepath.Join(base, "faultfs-full-drop-short.yaml")
	if err := os.WriteFile(scPath, []byte(short), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), asMainEnv+"=1", "NFSLAB_ROOT="+root, StateDirEnv+"="+filepath.Join(base, "state"))
	nfslab := func(ctx context.Context, args ...string) *exec.Cmd {
		c := exec.CommandContext(ctx, bin, append([]string{"--socket="}, args...)...)
		c.Env = env
		return c
	}

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	type plan struct {
		at      time.Duration // after start; 0 with onFault
		onFault bool          // kill this long after the "rule set" line
		after   time.Duration
	}
	var plans []plan
	for i := range crashTrials {
		switch i % 3 {
		case 0:
			plans = append(plans, plan{at: time.Duration(1000+rng.IntN(4500)) * time.Millisecond})
		case 1:
			plans = append(plans, plan{onFault: true, after: time.Duration(rng.IntN(20)) * time.Millisecond})
		default:
			plans = append(plans, plan{at: time.Duration(8000+rng.IntN(12000)) * time.Millisecond})
		}
	}
	rng.Shuffle(len(plans), func(i, j int) { plans[i], plans[j] = plans[j], plans[i] })

	// Namespace names live in the host's /run/netns, shared with other
	// tests: only a new nfslab-* name counts.
	netnsBefore := nfslabNetnsNames()
	var killed, duringFault, jvmAtKill, leftMounts, leftProcs, leftRecords int
	var times []string
	for i, pl := range plans {
		out := filepath.Join(base, "runs", strconv.Itoa(i))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		run := nfslab(ctx, "run", "--no-live", "--out", out, "--probe-cache", filepath.Join(base, "probe-cache"), scPath)
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		run.Stdout, run.Stderr = pw, pw
		if err := run.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		pw.Close()
		start := time.Now()
		var runOut bytes.Buffer
		faultSet, outDone := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(outDone)
			sc := bufio.NewScanner(pr)
			once := false
			for sc.Scan() {
				runOut.WriteString(sc.Text() + "\n")
				if !once && strings.Contains(sc.Text(), "faultfs rule") && strings.Contains(sc.Text(), " set: ") {
					once = true
					close(faultSet)
				}
			}
		}()
		exited := make(chan struct{})
		go func() { _ = run.Wait(); close(exited) }()
		var fault bool
		if pl.onFault {
			select {
			case <-faultSet:
				fault = true
				time.Sleep(pl.after)
			case <-exited:
			case <-time.After(30 * time.Second):
			}
		} else {
			select {
			case <-time.After(pl.at):
			case <-exited:
			}
			select {
			case <-faultSet:
				fault = true
			default:
			}
		}
		at := time.Since(start).Round(time.Millisecond)
		jvm := len(liveRecorded(root)) > 0
		select {
		case <-exited:
			cancel()
			pr.Close()
			t.Logf("trial %d: the run ended by itself after %v, before the kill; not counted", i, at)
			continue
		default:
		}
		_ = run.Process.Signal(syscall.SIGKILL)
		<-exited
		<-outDone
		pr.Close()
		killed++
		times = append(times, at.String())
		if fault {
			duringFault++
		}
		if jvm {
			jvmAtKill++
		}
		// What the kill left before heal: the mount stays until heal; the
		// JVM must die with nfslab (parent-death signal, no /dev/fuse held).
		mnts := mountsUnder(t, base)
		procs, live := waitProcsGone(base, root, 5*time.Second)
		recs, _ := proctrack.NewStore(cleanup.RootsAt(root).Records).List()
		leftMounts += len(mnts)
		leftProcs += len(procs) + len(live)
		leftRecords += len(recs)
		t.Logf("trial %d: killed at %v (rule set: %v, JVM running: %v); left before heal: mounts %q, processes %v, recorded processes alive %v, records %d",
			i, at, fault, jvm, mnts, procs, live, len(recs))
		if len(procs) > 0 {
			t.Errorf("trial %d: processes outlived the killed nfslab: %v", i, procs)
		}
		if len(live) > 0 {
			t.Errorf("trial %d: recorded processes still alive 5 s after the kill: %v", i, live)
		}

		heal := nfslab(ctx, "heal", "--all")
		hout, herr := heal.CombinedOutput()
		cancel()
		t.Logf("trial %d: heal --all:\n%s", i, strings.TrimSpace(string(hout)))
		if herr != nil {
			t.Errorf("trial %d: heal --all: %v", i, herr)
		}
		if len(mnts) > 0 && !strings.Contains(string(hout), "faultfs mount") {
			t.Errorf("trial %d: heal --all did not report the faultfs mount it removed", i)
		}
		if m := mountsUnder(t, base); len(m) > 0 {
			t.Errorf("trial %d: still mounted after heal --all: %q", i, m)
		}
		if p := procsUnder(base); len(p) > 0 {
			t.Errorf("trial %d: processes left after heal --all: %v", i, p)
		}
		for _, pid := range live {
			if _, err := (proctrack.Linux{}).StartTime(pid); err == nil {
				t.Errorf("trial %d: recorded process %d still runs after heal --all", i, pid)
			}
		}
		if es, err := proctrack.NewStore(cleanup.RootsAt(root).Records).List(); err != nil || len(es) > 0 {
			t.Errorf("trial %d: records left after heal --all: %+v (%v)", i, es, err)
		}
		for _, c := range []string{"iptables-save", "ip6tables-save"} {
			if o, err := exec.Command(c).CombinedOutput(); err == nil && bytes.Contains(bytes.ToLower(o), []byte("nfslab")) {
				t.Errorf("trial %d: nfslab rules left:\n%s", i, o)
			}
		}
		if o, _ := exec.Command("ip", "route", "show", "table", "all", "proto", "73").CombinedOutput(); len(bytes.TrimSpace(o)) > 0 {
			t.Errorf("trial %d: nfslab routes left:\n%s", i, o)
		}
		for n := range nfslabNetnsNames() {
			if !netnsBefore[n] {
				t.Errorf("trial %d: namespace name %s left", i, n)
			}
		}
		if t.Failed() {
			t.Logf("trial %d: run output:\n%s", i, runOut.String())
			break
		}
	}
	t.Logf("%d runs killed at %v: %d with the EIO rule set, %d with the JVM running; left before heal: %d mount(s), %d process(es), %d record(s); after heal: none",
		killed, times, duringFault, jvmAtKill, leftMounts, leftProcs, leftRecords)
	if killed < crashTrials*8/10 {
		t.Errorf("only %d of %d runs were killed (the others ended first)", killed, crashTrials)
	}
	if duringFault == 0 {
		t.Error("no kill fell while the rule was set: the trials do not cover the fault")
	}
	if leftMounts == 0 {
		t.Error("no trial left a mount for heal to remove: the trials do not show heal at work")
	}
}

// mountsUnder lists the mounts below dir, from mountinfo (never a stat,
// which hangs on a FUSE mount nobody serves).
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	mps, err := mount.NewLinux(mount.LinuxOptions{}).List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mp := range mps {
		if mount.Within(dir, mp.Path) {
			out = append(out, mp.Path+" ("+mp.FSType+")")
		}
	}
	return out
}

// procsUnder lists live processes (not zombies) whose command line names
// dir: the JVM's class path, error file and journal directory all do.
func procsUnder(dir string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cl, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cl, []byte(dir)) {
			continue
		}
		if _, err := (proctrack.Linux{}).StartTime(pid); err != nil {
			continue // a zombie waiting to be reaped
		}
		args := strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00")
		out = append(out, fmt.Sprintf("%d %s", pid, filepath.Base(args[0])))
	}
	return out
}

// nfslabNetnsNames returns the nfslab-* names in /run/netns.
func nfslabNetnsNames() map[string]bool {
	ents, _ := os.ReadDir("/run/netns")
	out := map[string]bool{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "nfslab") {
			out[e.Name()] = true
		}
	}
	return out
}

// liveRecorded returns the PIDs of the recorded child processes (the JVM)
// that still run: same PID and start time, and not a reapable zombie (a
// JVM whose threads are stuck in the kernel shows an empty command line,
// so only its record finds it).
func liveRecorded(root string) []int {
	es, _ := proctrack.NewStore(cleanup.RootsAt(root).Records).List()
	var out []int
	for _, e := range es {
		if e.Kind == proctrack.KindProcess && proctrack.Alive(proctrack.Linux{}, e.Proc) {
			out = append(out, e.Proc.PID)
		}
	}
	return out
}

// waitProcsGone waits up to d for the processes under dir and the
// recorded ones below root to go, and returns those that stay.
func waitProcsGone(dir, root string, d time.Duration) ([]string, []int) {
	deadline := time.Now().Add(d)
	for {
		p, r := procsUnder(dir), liveRecorded(root)
		if len(p)+len(r) == 0 || time.Now().After(deadline) {
			return p, r
		}
		time.Sleep(50 * time.Millisecond)
	}
}
