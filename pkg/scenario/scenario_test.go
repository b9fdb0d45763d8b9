package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/duration"
	"github.com/nfslab/nfslab/pkg/faultfs"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/zeebe"
)

const minimal = `metadata:
  name: t
duration: 2m
storage:
  kind: faultfs
target:
  kind: probe
timeline:
  - id: fail
    at: 10s
    for: 30s
    action: faultfs-set
    faultfs: {ops: [fsync], errno: EIO}
expectations:
  - kind: detector-fires
    detector: msync-ioexception
    after: fail
    within: 1m
`

func shipped(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("../../scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped scenarios found: %v", err)
	}
	return files
}

func TestShippedScenariosValidate(t *testing.T) {
	for _, f := range shipped(t) {
		s, err := LoadFile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); s.Metadata.Name != want {
			t.Errorf("%s: metadata.name %q, want the file name %q", f, s.Metadata.Name, want)
		}
		if !strings.Contains(s.Metadata.Seed, "00") {
			t.Errorf("%s: seed %q does not cite a seed", f, s.Metadata.Seed)
		}
	}
}

func TestNFSScenariosTargetProbeAndSwitchToZeebe(t *testing.T) {
	for _, f := range shipped(t) {
		if !strings.HasPrefix(filepath.Base(f), "nfs-") {
			continue
		}
		s, err := LoadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if s.Target.Kind != TargetProbe {
			t.Errorf("%s: target %q, want probe by default", f, s.Target.Kind)
		}
		if _, err := LoadFile(f, "target.kind=zeebe"); err != nil {
			t.Errorf("%s with target.kind=zeebe: %v", f, err)
		}
	}
}

func TestMinimalDecodes(t *testing.T) {
	s, err := Decode([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if s.Timeline[0].At.D().Seconds() != 10 || s.Timeline[0].For.D().Seconds() != 30 {
		t.Fatalf("step timing %v %v", s.Timeline[0].At, s.Timeline[0].For)
	}
}

func TestUnknownFieldHasLineAndColumn(t *testing.T) {
	doc := strings.Replace(minimal, "    at: 10s\n", "    at: 10s\n    atx: 3\n", 1)
	_, err := Decode([]byte(doc))
	if err == nil {
		t.Fatal("unknown field accepted")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error does not wrap ErrInvalid: %v", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Problems[0].Line != 11 || ve.Problems[0].Column == 0 {
		t.Fatalf("want line 11 and a column, got %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "atx") || !strings.Contains(msg, "line 11") || !strings.Contains(msg, "column 5") {
		t.Errorf("message lacks field, line or column: %s", msg)
	}
}

func TestValidationProblems(t *testing.T) {
	cases := []struct {
		name, old, new, want string
	}{
		{"bad duration", "at: 10s", "at: ten", `duration "ten" is not valid`},
		{"bare number duration", "at: 10s", "at: 10", `duration "10" is not valid`},
		{"negative duration", "for: 30s", "for: -3s", `negative`},
		{"step after end", "at: 10s", "at: 3m", "after the end of the timeline"},
		{"lasts past end", "for: 30s", "for: 2m", "lasts until 2m10s"},
		{"unknown action", "action: faultfs-set", "action: explode", `unknown action "explode"`},
		{"unknown detector", "detector: msync-ioexception", "detector: kaboom", `unknown detector "kaboom"`},
		{"zeebe-only detector on probe", "detector: msync-ioexception", "detector: raft-inactive", "nothing produces \"raft-inactive\" with target probe"},
		{"bad step ref", "after: fail", "after: nope", `no step "nope"`},
		{"bad errno", "errno: EIO", "errno: EBOOM", `unknown errno "EBOOM"`},
		{"bad op", "ops: [fsync]", "ops: [chmodx]", `unknown operation "chmodx"`},
		{"faultfs prob", "errno: EIO}", "errno: EIO, prob: 1.5}", "probability 1.5 is out of range"},
		{"bad name", "name: t", "name: Bad_Name", `name "Bad_Name"`},
		{"storage kind", "kind: faultfs", "kind: tape", `storage kind "tape"`},
		{"target kind", "kind: probe", "kind: toaster", `target kind "toaster"`},
		{"no start", "    at: 10s\n", "", "needs a start"},
		{"event nothing produces", "at: 10s", "on: partition-healthy", `nothing produces "partition-healthy"`},
		{"event unknown step", "at: 10s", "on: step-done:ghost", `no step "ghost"`},
		{"self wait", "at: 10s", "on: step-done:fail", "cannot wait for itself"},
		{"first hit of faultfs", "at: 10s", "on: fault-first-hit:fail", "has no packet counters"},
		{"unknown field", "within: 1m", "within: 1m\n    windo: 3s", `unknown field "windo"`},
		{"wrong expectation field", "within: 1m", "within: 1m\n    cause: localio", "cause does not apply to a detector-fires"},
		{"window past end", "within: 1m", "within: 5m", "window ends at 5m10s"},
		{"unknown kind", "kind: detector-fires", "kind: vibes", `unknown expectation kind "vibes"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(minimal, tc.old, tc.new, 1)
			if doc == minimal {
				t.Fatalf("replacement %q not found", tc.old)
			}
			_, err := Decode([]byte(doc))
			if err == nil {
				t.Fatalf("accepted:\n%s", doc)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("not ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "line ") {
				t.Errorf("error has no line: %v", err)
			}
		})
	}
}

const netDoc = `metadata: {name: n}
duration: 3m
storage:
  kind: nfs
  server: {kind: external, address: 192.168.24.110, export: /}
  options: proto=tcp,port=2049,soft,timeo=10
target: {kind: probe}
timeline:
  - id: d
    at: 30s
    for: 1m
    action: drop
    fault: {dst: $nfs-server, port: 2049, prob: 0.8}
  - id: h
    on: fault-first-hit:d
    delay: 5s
    action: heal
    ref: d
expectations:
  - {kind: fault-hits, step: d}
  - {kind: rate-below, fraction: 0.5, after: d, within: 1m}
`

// storage.server.localio: allow or disable, and only for a netns server.
func TestServerLocalIO(t *testing.T) {
	ext := "server: {kind: external, address: 192.168.24.110, export: /}"
	for _, tc := range []struct{ server, want string }{
		{"server: {kind: netns, localio: allow}", ""},
		{"server: {kind: netns, localio: disable}", ""},
		{"server: {kind: netns, localio: maybe}", `localio "maybe" is not one of allow, disable`},
		{"server: {kind: external, address: 192.168.24.110, localio: allow}", `localio "allow" needs server kind netns`},
	} {
		_, err := Decode([]byte(strings.Replace(netDoc, ext, tc.server, 1)))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.server, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.server, err, tc.want)
		}
	}
}

// storage.server.publish is podman's -p for the container server; a netns
// or external server has no publish (nfslab's own imitation is gone).
func TestServerPublish(t *testing.T) {
	ext := "server: {kind: external, address: 192.168.24.110, export: /}"
	for _, tc := range []struct{ server, want string }{
		{"server: {kind: container, publish: 127.0.0.1:2049}", ""},
		{"server: {kind: container}", ""},
		{"server: {kind: container, publish: localhost}", `storage.server.publish: publish "localhost" is not ADDRESS:PORT`},
		{"server: {kind: netns, publish: 127.0.0.1:2049}", `storage.server.publish: publish applies only to server kind container (podman -p ADDRESS:PORT:2049), not "netns"`},
		{"server: {kind: external, address: 192.168.24.110, publish: 127.0.0.1:2049}", `publish applies only to server kind container`},
	} {
		_, err := Decode([]byte(strings.Replace(netDoc, ext, tc.server, 1)))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.server, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.server, err, tc.want)
		}
	}
}

// A step's fault decodes straight into netfault.Spec: a rule fault without
// a port gets 2049, "port: 0" is any port, a route gets none.
func TestFaultDecodesToSpec(t *testing.T) {
	resolve := func(string) (string, error) { return "10.0.0.9", nil }
	cases := []struct {
		old, new string
		want     netfault.Spec
	}{
		{"", "", netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.9", Port: 2049, Proto: "tcp", Dir: netfault.DirOut, Prob: 0.8, For: time.Minute, Label: "step:d"}},
		{"port: 2049, ", "", netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.9", Port: 2049, Proto: "tcp", Dir: netfault.DirOut, Prob: 0.8, For: time.Minute, Label: "step:d"}},
		{"port: 2049, prob: 0.8", "port: 0, dir: both, match_original: true", netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.9", Proto: "tcp", Dir: netfault.DirBoth, MatchOriginal: true, For: time.Minute, Label: "step:d"}},
		// On the server: local_port is the server's port, and the
		// client's (port) is then any unless given.
		{"port: 2049, prob: 0.8", "local_port: 2049, dir: both", netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.9", LocalPort: 2049, Proto: "tcp", Dir: netfault.DirBoth, For: time.Minute, Label: "step:d"}},
		{"port: 2049, prob: 0.8", "local_port: 2049, port: 800", netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.9", Port: 800, LocalPort: 2049, Proto: "tcp", Dir: netfault.DirOut, For: time.Minute, Label: "step:d"}},
		{"action: drop\n    fault: {dst: $nfs-server, port: 2049, prob: 0.8}", "action: unreachable\n    fault: {dst: $nfs-server, route_type: blackhole}",
			netfault.Spec{Kind: netfault.KindUnreachable, Dst: "10.0.0.9", RouteType: netfault.RouteBlackhole, For: time.Minute, Label: "step:d"}},
		// delay and limit: netem's and htb's settings in tc's words, the
		// port defaults to 2049 as for a rule fault.
		{"action: drop\n    fault: {dst: $nfs-server, port: 2049, prob: 0.8}", "action: delay\n    fault: {dst: $nfs-server, delay: 200ms, jitter: 50ms, correlation: 25, loss: 1, dir: both}",
			netfault.Spec{Kind: netfault.KindDelay, Dst: "10.0.0.9", Port: 2049, Proto: "tcp", Dir: netfault.DirBoth, Delay: 200 * time.Millisecond, Jitter: 50 * time.Millisecond, Correlation: 25, Loss: 1, For: time.Minute, Label: "step:d"}},
		{"action: drop\n    fault: {dst: $nfs-server, port: 2049, prob: 0.8}", "action: limit\n    fault: {dst: $nfs-server, rate: 1mbit, burst: 32kb}",
			netfault.Spec{Kind: netfault.KindLimit, Dst: "10.0.0.9", Port: 2049, Proto: "tcp", Dir: netfault.DirOut, Rate: 1_000_000, Burst: 32 << 10, For: time.Minute, Label: "step:d"}},
	}
	// A route has no counters: nothing waits for its first hit.
	routeOK := strings.NewReplacer("on: fault-first-hit:d", "at: 1m", "\n    delay: 5s", "", "  - {kind: fault-hits, step: d}\n", "")
	for _, tc := range cases {
		doc := strings.Replace(netDoc, tc.old, tc.new, 1)
		if strings.Contains(tc.new, "unreachable") {
			doc = routeOK.Replace(doc)
		}
		s, err := Decode([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", tc.new, err)
		}
		got, err := s.Timeline[0].NetfaultSpec(resolve)
		if err != nil || got != tc.want {
			t.Errorf("%q: spec %+v, %v; want %+v", tc.new, got, err, tc.want)
		}
	}
}

func TestNetworkValidation(t *testing.T) {
	if _, err := Decode([]byte(netDoc)); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ old, new, want string }{
		{"prob: 0.8", "prob: 1.5", "probability 1.5 is out of range"},
		{"prob: 0.8", "prob: .nan", "probability NaN"},
		{"port: 2049, prob", "port: 70000, prob", "port 70000 is out of range"},
		{"port: 2049, prob", "port: -1, prob", "port -1 is out of range"},
		{"port: 2049, prob", "local_port: 70000, prob", "local port 70000 is out of range"},
		{"port: 2049, prob: 0.8", "local_port: 2049, match_original: true", "--local-port 2049 and --match-original"},
		{"dst: $nfs-server", "dst: not-an-ip", `destination "not-an-ip"`},
		{"dst: $nfs-server", "dst: $broker:0", "needs target kind zeebe"},
		{"dst: $nfs-server", "dst: $printer", `unknown reference "$printer"`},
		{"soft,timeo=10", "soft,hard,timeo=10", "soft and hard contradict each other"},
		{"port=2049,soft", "port=99999,soft", "port=99999 is out of range"},
		// pkg/mount's parser, not a second list: a typo and a zero timeout
		// are refused here, not at mount time.
		{"port=2049,soft", "port=2049,sotf", `unknown NFS option "sotf"`},
		{"soft,timeo=10", "soft,timeo=0", "timeo=0 is 0.0 s"},
		{"soft,timeo=10", "soft,timeo=10,vers=2", "NFSv2 is not supported"},
		{"kind: external, address: 192.168.24.110", "kind: external", "an external server needs an address"},
		{"kind: external", "kind: cloud", `server kind "cloud"`},
		{"ref: d", "ref: h", "is a heal, not a network fault"},
		{"fraction: 0.5", "fraction: 1.5", "fraction 1.5 is out of range"},
		{"action: drop", "action: unreachable", "probability 0.8 applies only to drop"},
		{"{kind: fault-hits, step: d}", "{kind: fault-no-hits, step: d, cause: gremlins}", `cause "gremlins"`},
	}
	for _, tc := range cases {
		doc := strings.Replace(netDoc, tc.old, tc.new, 1)
		if doc == netDoc {
			t.Fatalf("replacement %q not found", tc.old)
		}
		_, err := Decode([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s -> %s: error %v, want %q", tc.old, tc.new, err, tc.want)
		}
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	doc := strings.NewReplacer("prob: 0.8", "prob: 1.5", "fraction: 0.5", "fraction: 3").Replace(netDoc)
	_, err := Decode([]byte(doc))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) < 2 {
		t.Fatalf("want two problems, got %v", err)
	}
}

func TestOverrides(t *testing.T) {
	s, err := Decode([]byte(netDoc), "storage.server.address=10.0.0.9", "duration=5m", "load.kind=none")
	if err == nil {
		t.Fatalf("load none with a rate expectation accepted")
	}
	s, err = Decode([]byte(netDoc), "storage.server.address=10.0.0.9", "duration=5m", "target.probe={rate: 10}")
	if err != nil {
		t.Fatal(err)
	}
	if s.Storage.Server.Address != "10.0.0.9" || s.Duration.D().Minutes() != 5 || s.Target.Probe == nil || s.Target.Probe.Rate != 10 {
		t.Fatalf("overrides not applied: %+v %v %+v", s.Storage.Server, s.Duration, s.Target.Probe)
	}
	for _, bad := range []string{"nokey", "Target.Kind=x", "timeline[7].at=3s", "storage.server.colour=red", "nothere.x=1"} {
		if _, err := Decode([]byte(netDoc), bad); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("override %q: err %v", bad, err)
		}
	}
}

func TestCycleDetected(t *testing.T) {
	doc := strings.Replace(netDoc, "    at: 30s\n", "    on: step-done:h\n", 1)
	_, err := Decode([]byte(doc))
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("cycle not reported: %v", err)
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]Size{"16MB": 16 << 20, "512KB": 512 << 10, "4096": 4096, "1GiB": 1 << 30} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "MB", "-3MB", "1.5MB", "12XB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range shipped(f) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(minimal))
	f.Add([]byte(netDoc))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("decoded scenario fails Validate: %v", err)
		}
	})
}

// TestFaultfsVocabularyIsFaultfs: a scenario takes faultfs's operation
// and errno names, so EINVAL and EBADF (which faultfs accepts) pass, and
// every operation is "any", faultfs's word.
func TestFaultfsVocabularyIsFaultfs(t *testing.T) {
	for _, rule := range []string{
		"{ops: [fsync], errno: EINVAL}",
		"{ops: [read], errno: EBADF}",
		"{ops: [any], errno: EIO}",
		"{ops: [lookup, statfs], errno: ENOENT}",
		"{ops: [write], errno: EXDEV}", // any errno(3) name, as faultfs.ParseErrno
	} {
		doc := strings.Replace(minimal, "{ops: [fsync], errno: EIO}", rule, 1)
		s, err := Decode([]byte(doc))
		if err != nil {
			t.Errorf("%s refused: %v", rule, err)
			continue
		}
		if _, err := s.Timeline[0].Faultfs.Rules("x"); err != nil {
			t.Errorf("%s: faultfs refuses what the scenario accepted: %v", rule, err)
		}
	}
	for _, op := range faultfs.OpNames() {
		doc := strings.Replace(minimal, "ops: [fsync]", "ops: ["+op+"]", 1)
		if _, err := Decode([]byte(doc)); err != nil {
			t.Errorf("faultfs op %q refused: %v", op, err)
		}
	}
	doc := strings.Replace(minimal, "ops: [fsync]", "ops: [all]", 1)
	if _, err := Decode([]byte(doc)); err == nil || !strings.Contains(err.Error(), `unknown operation "all"`) || !strings.Contains(err.Error(), "every operation is any") {
		t.Errorf("ops [all] error = %v, want it refused pointing at any", err)
	}
}

// TestFaultfsRulesFromScenario: what only faultfs checks (the byte range
// applies to read and write) is reported by the scenario validator too.
func TestFaultfsRulesFromScenario(t *testing.T) {
	doc := strings.Replace(minimal, "{ops: [fsync], errno: EIO}", "{ops: [fsync], errno: EIO, offset: 8MB}", 1)
	if _, err := Decode([]byte(doc)); err == nil || !strings.Contains(err.Error(), "offset/length apply to op read or write") {
		t.Errorf("offset on fsync: error = %v", err)
	}
	r := FaultfsRule{Ops: []string{"write", "any"}, Errno: "eio", Path: "**/*.log", Latency: duration.Duration(time.Second)}
	rules, err := r.Rules("run-fail")
	if err != nil {
		t.Fatal(err)
	}
	want := []faultfs.Rule{
		{ID: "run-fail-write", Op: faultfs.OpWrite, PathGlob: "**/*.log", Errno: faultfs.Errno(syscall.EIO), Prob: 1, Latency: duration.Duration(time.Second)},
		{ID: "run-fail-any", Op: faultfs.OpAny, PathGlob: "**/*.log", Errno: faultfs.Errno(syscall.EIO), Prob: 1, Latency: duration.Duration(time.Second)},
	}
	if !slices.Equal(rules, want) {
		t.Errorf("Rules = %+v\nwant %+v", rules, want)
	}
}

// TestErrorCodesAreWhatTheLoadCounts: an errors expectation may name only
// a code the Zeebe load records errors under; Aborted was accepted before
// and then could never appear.
func TestErrorCodesAreWhatTheLoadCounts(t *testing.T) {
	doc := func(code string) []byte {
		return []byte(strings.Replace(minimal, "kind: detector-fires\n    detector: msync-ioexception", "kind: errors-appear\n    code: "+code, 1))
	}
	for _, code := range append([]string{"any"}, zeebe.ErrorClasses()...) {
		if _, err := Decode(doc(code)); err != nil {
			t.Errorf("code %s refused: %v", code, err)
		}
	}
	if _, err := Decode(doc("Aborted")); err == nil || !strings.Contains(err.Error(), `code "Aborted" is not one the Zeebe load counts`) {
		t.Errorf("code Aborted: error = %v", err)
	}
}

func TestServerActions(t *testing.T) {
	const doc = `metadata: {name: t}
duration: 2m
storage: {kind: nfs, server: {kind: netns}}
target: {kind: probe}
timeline:
  - {id: down, at: 10s, for: 20s, action: server-restart}
  - {id: gone, at: 40s, for: 10s, action: server-unexport}
  - {id: forget, at: 60s, action: server-expire-clients}
expectations:
  - {kind: recovery, by: appending, after: down, within: 1m}
`
	if _, err := Decode([]byte(doc)); err != nil {
		t.Fatalf("server actions: %v", err)
	}
	if _, err := Decode([]byte(doc), "storage.server.kind=container", "timeline=[{id: down, at: 10s, for: 20s, action: server-restart}]"); err != nil {
		t.Errorf("server-restart of the container server: %v", err)
	}
	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"storage.server.kind=external", "storage.server.address=10.0.0.9"}, "server-restart needs nfslab's own server"},
		{[]string{"storage={kind: faultfs}"}, "server-unexport needs nfslab's own server"},
		{[]string{"storage.server.kind=container"}, "server-unexport needs server kind netns: the container server has only server-restart"},
		{[]string{"timeline=[{id: forget, at: 1s, for: 5s, action: server-expire-clients}]"}, "for applies to"},
	} {
		_, err := Decode([]byte(doc), c.set...)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.set, err, c.want)
		}
	}
}

// target.probe.container is a boolean, settable with --set on any probe
// scenario.
func TestProbeContainer(t *testing.T) {
	s, err := Decode([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if s.Target.Probe != nil && s.Target.Probe.Container {
		t.Errorf("a host probe decoded with container: %+v", s.Target.Probe)
	}
	doc := strings.Replace(minimal, "  kind: probe\n", "  kind: probe\n  probe: {container: true}\n", 1)
	if s, err = Decode([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	if !s.Target.Probe.Container {
		t.Errorf("container: true decoded to %+v", s.Target.Probe)
	}
	withProbe := strings.Replace(minimal, "  kind: probe\n", "  kind: probe\n  probe: {batch: 64}\n", 1)
	if s, err = Decode([]byte(withProbe), "target.probe.container=true"); err != nil || !s.Target.Probe.Container {
		t.Errorf("--set target.probe.container=true: %v", err)
	}
	bad := strings.Replace(minimal, "  kind: probe\n", "  kind: probe\n  probe: {container: podman}\n", 1)
	_, err = Decode([]byte(bad))
	if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "bool") || !strings.Contains(err.Error(), "line 8") {
		t.Errorf("container: podman: %v, want an invalid-scenario error naming the type and line 8", err)
	}
}
