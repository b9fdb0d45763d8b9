package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/duration"
	"github.com/nfslab/nfslab/pkg/probe"
)

// Smoke is the guest-side NFS smoke test: the full-drop case built from the
// raw tools and the nfslab fault CLI, independent of the scenario engine.
// It is the explicit fallback `nfslab vm run` uses while a scenario cannot
// run through `nfslab run`, and the case the VM's Go test asserts on.
//
// Equivalent to:
//
//	ip netns add nfslab-vmsmoke; ip link add nfslab-vs0 type veth peer name nfslab-vs1 netns nfslab-vmsmoke
//	nsenter --net=/run/netns/nfslab-vmsmoke mount -t nfsd nfsd /proc/fs/nfsd
//	nsenter --net=... exportfs -i -o rw,... 10.214.0.1:/srv/nfslab-vmsmoke
//	nsenter --net=... rpc.mountd -F -N 3; nsenter --net=... rpc.nfsd -N 3 -L 10 -G 10 4
//	mount -t nfs4 -o vers=4.2,proto=tcp,port=2049,soft,timeo=10,retrans=2 10.214.0.2:/ /mnt/nfslab-vmsmoke
//	java -cp PROBE JournalProbe --dir /mnt/nfslab-vmsmoke/journal ...
//	nfslab drop --dst 10.214.0.2 --port 2049 --for 5m   # until the msync IOException
//	nfslab heal --all; teardown in reverse order
type Smoke struct {
	Nfslab   string // the nfslab binary (for drop, status, heal)
	ProbeDir string // directory holding JournalProbe.class
	OutDir   string // run directories are created below it
	Clock    clock.Clock
	Log      *slog.Logger
	Out      io.Writer
	// DetectWithin bounds the wait for the msync IOException after the drop.
	DetectWithin time.Duration
}

// Fixed names of the smoke test's objects (all tagged nfslab).
const (
	smokeNetns  = "nfslab-vmsmoke"
	smokeVeth   = "nfslab-vs0"
	smokePeer   = "nfslab-vs1"
	smokeHostIP = "10.214.0.1"
	smokeSrvIP  = "10.214.0.2"
	smokeExport = "/srv/nfslab-vmsmoke"
	smokeMount  = "/mnt/nfslab-vmsmoke"
	// MsyncEvidence is the JVM's message for a failed force().
	MsyncEvidence = "msync with parameter MS_SYNC failed"
)

// SmokeResult is what the smoke test found; it is also written as
// result.json in the run directory.
type SmokeResult struct {
	Case            string            `json:"case"`
	Verdict         string            `json:"verdict"`
	Reasons         []string          `json:"reasons,omitempty"`
	BaselineRate    int               `json:"baseline_rate_per_s"`
	DropPackets     uint64            `json:"drop_packets"`
	TimeToDetection duration.Duration `json:"time_to_detection"`
	Evidence        string            `json:"evidence,omitempty"`
	ProbeExit       int               `json:"probe_exit"`
	RunDir          string            `json:"run_dir"`
}

type lineAt struct {
	at   time.Time
	text string
}

// FullDrop runs the full-drop case and always tears everything down.
func (s Smoke) FullDrop(ctx context.Context) (SmokeResult, error) {
	res := SmokeResult{Case: "full-drop", Verdict: Fail, ProbeExit: -1}
	res.RunDir = filepath.Join(s.OutDir, "vm-smoke-full-drop-"+s.Clock.Now().UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(res.RunDir, 0o755); err != nil {
		return res, fmt.Errorf("creating run dir: %w", err)
	}
	probeLog, err := os.Create(filepath.Join(res.RunDir, "probe.log"))
	if err != nil {
		return res, fmt.Errorf("creating probe log: %w", err)
	}
	defer probeLog.Close()

	var undo []func() error
	defer func() {
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](); err != nil {
				s.Log.Warn("smoke teardown", "err", err)
			}
		}
	}()
	run := func(name string, args ...string) error { return cmdrun.Run(ctx, name, args...) }
	ns := func(name string, args ...string) error {
		return cmdrun.Run(ctx, "nsenter", append([]string{"--net=/run/netns/" + smokeNetns, "--", name}, args...)...)
	}
	step := func(what string, do func() error, rollback func() error) error {
		s.say("smoke: %s", what)
		if err := do(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if rollback != nil {
			undo = append(undo, rollback)
		}
		return nil
	}
	setup := []struct {
		what     string
		do, back func() error
	}{
		{"load nfsd", func() error { return run("modprobe", "nfsd") }, nil},
		{"create netns " + smokeNetns, func() error { return run("ip", "netns", "add", smokeNetns) },
			func() error { return run("ip", "netns", "delete", smokeNetns) }},
		{"create veth " + smokeVeth, func() error {
			return run("ip", "link", "add", smokeVeth, "type", "veth", "peer", "name", smokePeer, "netns", smokeNetns)
		}, func() error { return ignoreMissing(run("ip", "link", "delete", smokeVeth)) }},
		{"address the veth pair", func() error {
			for _, a := range [][]string{
				{"ip", "addr", "add", smokeHostIP + "/30", "dev", smokeVeth},
				{"ip", "link", "set", smokeVeth, "up"},
				{"ip", "-n", smokeNetns, "addr", "add", smokeSrvIP + "/30", "dev", smokePeer},
				{"ip", "-n", smokeNetns, "link", "set", smokePeer, "up"},
				{"ip", "-n", smokeNetns, "link", "set", "lo", "up"},
			} {
				if err := run(a[0], a[1:]...); err != nil {
					return err
				}
			}
			return nil
		}, nil},
		{"create export dir", func() error { return os.MkdirAll(smokeExport, 0o755) },
			func() error { return os.RemoveAll(smokeExport) }},
		{"mount the namespace's nfsd filesystem", func() error { return ns("mount", "-t", "nfsd", "nfsd", "/proc/fs/nfsd") },
			func() error { return run("umount", "/proc/fs/nfsd") }},
		{"export " + smokeExport, func() error {
			return ns("exportfs", "-i", "-o", "rw,no_root_squash,insecure,no_subtree_check,fsid=0,sync", smokeHostIP+":"+smokeExport)
		}, func() error { return ns("exportfs", "-u", smokeHostIP+":"+smokeExport) }},
	}
	for _, st := range setup {
		if err := step(st.what, st.do, st.back); err != nil {
			return s.finish(res, err)
		}
	}
	mountd := cmdrun.Command(ctx, "nsenter", "--net=/run/netns/"+smokeNetns, "--", "rpc.mountd", "-F", "-N", "3", "--no-udp")
	mountd.Stdout, mountd.Stderr = probeLog, probeLog
	if err := step("start rpc.mountd", mountd.Start, func() error {
		_ = mountd.Process.Kill()
		_ = mountd.Wait()
		return nil
	}); err != nil {
		return s.finish(res, err)
	}
	if err := step("start knfsd (grace and lease 10 s)", func() error {
		return ns("rpc.nfsd", "-N", "3", "--no-udp", "-L", "10", "-G", "10", "4")
	}, func() error { return ns("rpc.nfsd", "0") }); err != nil {
		return s.finish(res, err)
	}
	if err := step("mount "+smokeSrvIP+":/ soft", func() error {
		if err := os.MkdirAll(smokeMount, 0o755); err != nil {
			return err
		}
		return run("mount", "-t", "nfs4", "-o", "vers=4.2,proto=tcp,port=2049,soft,timeo=10,retrans=2", smokeSrvIP+":/", smokeMount)
	}, func() error {
		if err := run("umount", "-f", smokeMount); err != nil {
			if err2 := run("umount", "-l", smokeMount); err2 != nil {
				return err2
			}
		}
		return os.Remove(smokeMount)
	}); err != nil {
		return s.finish(res, err)
	}
	if err := os.MkdirAll(filepath.Join(smokeMount, "journal"), 0o755); err != nil {
		return s.finish(res, fmt.Errorf("creating journal dir on the NFS mount: %w", err))
	}

	// The probe: appends and force()s on the NFS mount until it fails.
	lines := make(chan lineAt, 1024)
	argv := probe.Command(s.ProbeDir, res.RunDir, probe.Config{Dir: filepath.Join(smokeMount, "journal"),
		SegmentSize: 16 << 20, Batch: 64, Rate: 2000, Duration: 10 * time.Minute, Mode: probe.ModeAppendOnly})
	jvm := cmdrun.Command(ctx, argv[0], argv[1:]...)
	jvm.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	jvm.Stdout, jvm.Stderr = pw, pw
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			t := sc.Text()
			fmt.Fprintln(probeLog, t)
			select {
			case lines <- lineAt{s.Clock.Now(), t}:
			default:
			}
		}
		close(lines)
	}()
	exited := make(chan error, 1)
	if err := step("start the journal probe", func() error {
		if err := jvm.Start(); err != nil {
			return err
		}
		go func() { exited <- jvm.Wait(); pw.Close() }()
		return nil
	}, func() error {
		_ = unix.Kill(-jvm.Process.Pid, unix.SIGKILL)
		<-exited
		wg.Wait()
		return nil
	}); err != nil {
		return s.finish(res, err)
	}
	// Baseline: the third rate line (the JVM warms up first).
	rates := 0
	if err := waitLine(ctx, s.Clock, lines, 120*time.Second, func(l lineAt) bool {
		var r int
		if _, err := fmt.Sscanf(strings.TrimPrefix(l.text, "probe: "), "append rate=%d/s", &r); err == nil {
			rates++
			res.BaselineRate = r
		}
		return rates >= 3
	}); err != nil {
		return s.finish(res, fmt.Errorf("waiting for the probe's append rate: %w", err))
	}
	s.say("smoke: baseline %d appends/s", res.BaselineRate)
	dropAt := s.Clock.Now()
	if err := step("nfslab drop --dst "+smokeSrvIP+" --port 2049", func() error {
		out, err := cmdrun.Output(ctx, s.Nfslab, "drop", "--dst", smokeSrvIP, "--port", "2049", "--for", "10m", "--label", "vm-smoke")
		s.say("%s", strings.TrimSpace(string(out)))
		return err
	}, func() error { return cmdrun.Run(context.WithoutCancel(ctx), s.Nfslab, "heal", "--all") }); err != nil {
		return s.finish(res, err)
	}
	detectErr := waitLine(ctx, s.Clock, lines, s.DetectWithin, func(l lineAt) bool {
		if strings.Contains(l.text, MsyncEvidence) {
			res.Evidence = l.text
			res.TimeToDetection = duration.Duration(l.at.Sub(dropAt))
			return true
		}
		return false
	})
	res.DropPackets = s.dropPackets(ctx)
	select {
	case err := <-exited:
		exited <- err // for the teardown
		res.ProbeExit = exitCode(err)
	case <-s.Clock.After(15 * time.Second):
	}
	if detectErr != nil {
		res.Reasons = append(res.Reasons, fmt.Sprintf("no %q within %s of the drop: %v", MsyncEvidence, s.DetectWithin, detectErr))
	}
	if res.DropPackets == 0 {
		res.Reasons = append(res.Reasons, "the drop rule matched 0 packets")
	}
	if len(res.Reasons) == 0 {
		res.Verdict = Pass
	}
	return s.finish(res, nil)
}

func (s Smoke) dropPackets(ctx context.Context) uint64 {
	out, err := cmdrun.Output(ctx, s.Nfslab, "status", "--json")
	if err != nil {
		s.Log.Warn("reading fault counters", "err", err)
		return 0
	}
	var faults []struct {
		Packets uint64 `json:"packets"`
	}
	if err := json.Unmarshal(out, &faults); err != nil {
		// Some versions wrap the list; fall back to any "packets" field.
		var wrapped struct {
			Faults []struct {
				Packets uint64 `json:"packets"`
			} `json:"faults"`
		}
		if json.Unmarshal(out, &wrapped) != nil {
			s.Log.Warn("decoding fault counters", "err", err, "out", string(out))
			return 0
		}
		faults = wrapped.Faults
	}
	var n uint64
	for _, f := range faults {
		n += f.Packets
	}
	return n
}

func (s Smoke) finish(res SmokeResult, err error) (SmokeResult, error) {
	if err != nil {
		res.Reasons = append(res.Reasons, err.Error())
		res.Verdict = Fail
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	_ = os.WriteFile(filepath.Join(res.RunDir, "result.json"), append(b, '\n'), 0o644)
	_ = os.WriteFile(filepath.Join(res.RunDir, "report.md"), []byte(smokeReport(res)), 0o644)
	s.say("smoke: %s %s (time to detection %s, %d packets dropped)", res.Case, res.Verdict,
		res.TimeToDetection.D().Round(time.Millisecond), res.DropPackets)
	for _, r := range res.Reasons {
		s.say("smoke: reason: %s", r)
	}
	return res, err
}

func smokeReport(r SmokeResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# VM smoke: %s — %s\n\n", r.Case, r.Verdict)
	b.WriteString("## Expected\n\nA full iptables DROP of the NFS traffic (soft mount, timeo=10, retrans=2) makes the JVM's MappedByteBuffer.force() fail with `" + MsyncEvidence + "`.\n\n")
	b.WriteString("## Actual\n\n")
	fmt.Fprintf(&b, "- baseline append rate: %d/s\n- packets dropped: %d\n- time to detection: %s\n- probe exit status: %d\n",
		r.BaselineRate, r.DropPackets, r.TimeToDetection.D().Round(time.Millisecond), r.ProbeExit)
	if r.Evidence != "" {
		fmt.Fprintf(&b, "- evidence:\n\n```\n%s\n```\n", r.Evidence)
	}
	b.WriteString("\n## Results\n\n")
	if r.Verdict == Pass {
		b.WriteString("PASS: the fault bit and the JVM reported the real msync error.\n")
	}
	for _, x := range r.Reasons {
		fmt.Fprintf(&b, "- %s\n", x)
	}
	return b.String()
}

func (s Smoke) say(format string, args ...any) {
	if s.Out != nil {
		fmt.Fprintf(s.Out, format+"\n", args...)
	}
}

var errTimeout = errors.New("timed out")

func waitLine(ctx context.Context, clk clock.Clock, lines <-chan lineAt, d time.Duration, match func(lineAt) bool) error {
	deadline := clk.After(d)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return errors.New("the probe ended")
			}
			if match(l) {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("%w after %s", errTimeout, d)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// ignoreMissing treats "Cannot find device" as done: the link went away
// with its namespace.
func ignoreMissing(err error) error {
	var ce *cmdrun.Error
	if errors.As(err, &ce) && strings.Contains(ce.Output, "Cannot find device") {
		return nil
	}
	return err
}
