package chaosmesh

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/nfslab/nfslab/pkg/duration"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/nfslab/nfslab/pkg/scenario"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const scenariosDir = "../../../scenarios"

// goldenOptions are the options of the golden files and of the worked
// example in docs/chaos-mesh.md.
func goldenOptions(t *testing.T) Options {
	t.Helper()
	var o Options
	for _, kv := range [][2]string{{"namespace", "zeebe"}, {"selector", "app=zeebe"},
		{"server-address", "10.0.0.5"}, {"container", "zeebe"}} {
		if err := o.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// mustMap are the shipped scenarios whose timeline has something Chaos
// Mesh expresses: each has a golden file.
var mustMap = []string{"faultfs-drop-on-replay", "faultfs-full-drop", "faultfs-random-drop-80",
	"faultfs-recovery-after-heal", "nfs-drop-on-replay", "nfs-full-drop", "nfs-random-drop-80",
	"nfs-recovery-after-heal"}

func shipped(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(scenariosDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in %s: %v", scenariosDir, err)
	}
	return files
}

// TestGolden exports every shipped scenario with the same options and
// compares with testdata/NAME.workflow.yaml (go test -update rewrites
// them); each output must decode strictly into Chaos Mesh's types and pass
// its webhook's validation.
func TestGolden(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range shipped(t) {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			sc, err := scenario.LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Export(sc, goldenOptions(t))
			golden := filepath.Join("testdata", name+".workflow.yaml")
			if errors.Is(err, ErrNothingMaps) {
				if slices.Contains(mustMap, name) {
					t.Fatalf("%s maps nothing any more: %s", name, res.Report())
				}
				if _, err := os.Stat(golden); err == nil && !*update {
					t.Errorf("%s maps nothing, but %s exists", name, golden)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			seen[name] = true
			got, err := res.YAML("scenarios/" + name + ".yaml")
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, golden, got)
			validateWorkflowYAML(t, got)
		})
	}
	for _, n := range mustMap {
		if !seen[n] && !t.Failed() {
			t.Errorf("scenario %s is not shipped any more or did not map", n)
		}
	}
}

func checkGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", golden, got)
	}
}

// validateWorkflowYAML decodes data strictly (an unknown field is an
// error) into Chaos Mesh's Workflow and runs the admission webhook's
// defaulting and validation on it and on every chaos template as a
// stand-alone object with the template's deadline as its duration.
func validateWorkflowYAML(t *testing.T, data []byte) *v1alpha1.Workflow {
	t.Helper()
	var wf v1alpha1.Workflow
	if err := k8syaml.UnmarshalStrict(data, &wf); err != nil {
		t.Fatalf("strict decode into v1alpha1.Workflow: %v", err)
	}
	if wf.APIVersion != "chaos-mesh.org/v1alpha1" || wf.Kind != "Workflow" {
		t.Fatalf("apiVersion %q kind %q", wf.APIVersion, wf.Kind)
	}
	if err := validateWorkflow(&wf); err != nil {
		t.Fatalf("webhook validation: %v", err)
	}
	return &wf
}

func validateWorkflow(wf *v1alpha1.Workflow) error {
	ctx := context.Background()
	if err := wf.Default(ctx, wf); err != nil {
		return fmt.Errorf("default: %w", err)
	}
	if _, err := wf.ValidateCreate(ctx, wf); err != nil {
		return fmt.Errorf("workflow: %w", err)
	}
	for _, tm := range wf.Spec.Templates {
		if tm.EmbedChaos == nil {
			continue
		}
		obj, err := tm.EmbedChaos.SpawnNewObject(tm.Type)
		if err != nil {
			return fmt.Errorf("template %s: %w", tm.Name, err)
		}
		if tm.Deadline == nil {
			return fmt.Errorf("template %s has no deadline", tm.Name)
		}
		switch o := obj.(type) {
		case *v1alpha1.NetworkChaos:
			o.Spec.Duration = tm.Deadline
			_ = o.Default(ctx, o)
			_, err = o.ValidateCreate(ctx, o)
		case *v1alpha1.IOChaos:
			o.Spec.Duration = tm.Deadline
			_ = o.Default(ctx, o)
			_, err = o.ValidateCreate(ctx, o)
		case *v1alpha1.PodChaos:
			o.Spec.Duration = tm.Deadline
			_ = o.Default(ctx, o)
			_, err = o.ValidateCreate(ctx, o)
		default:
			return fmt.Errorf("template %s: unexpected type %T", tm.Name, obj)
		}
		if err != nil {
			return fmt.Errorf("template %s as a stand-alone %s: %w", tm.Name, tm.Type, err)
		}
	}
	return nil
}

// TestValidationBites: the validation above refuses what Chaos Mesh
// refuses, so a golden file passing it means something.
func TestValidationBites(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "nfs-random-drop-80.workflow.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to, want string }{
		{"loss: \"80\"", "loss: \"eighty\"", "Loss"},
		{"deadline: 10s", "deadline: ten", ""},
		{"entry: nfs-random-drop-80", "entry: nowhere", "entry"},
		{"action: loss", "action: loss\n      lossy: true", "unknown field"},
	} {
		bad := strings.Replace(string(data), c.from, c.to, 1)
		if bad == string(data) {
			t.Fatalf("%q not in the golden file", c.from)
		}
		var wf v1alpha1.Workflow
		err := k8syaml.UnmarshalStrict([]byte(bad), &wf)
		if err == nil {
			err = validateWorkflow(&wf)
		}
		if err == nil {
			t.Errorf("%q -> %q: accepted", c.from, c.to)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q -> %q: error %v does not mention %q", c.from, c.to, err, c.want)
		}
	}
}

// TestNothingDroppedSilently: every step, expectation, detector and
// rollback of every shipped scenario (and of one that uses every action)
// is either exported or listed as not exported.
func TestNothingDroppedSilently(t *testing.T) {
	scs := map[string]*scenario.Scenario{"every-action": everyAction(t)}
	for _, f := range shipped(t) {
		sc, err := scenario.LoadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		scs[sc.Metadata.Name] = sc
	}
	for name, sc := range scs {
		t.Run(name, func(t *testing.T) {
			res, err := Export(sc, goldenOptions(t))
			if err != nil && !errors.Is(err, ErrNothingMaps) {
				t.Fatal(err)
			}
			listed := func(prefix string) bool {
				for _, m := range res.Mapped {
					if strings.HasPrefix(m, prefix) {
						return true
					}
				}
				for _, u := range res.Unmapped {
					if strings.HasPrefix(u.Path, prefix) && !u.Partial {
						return true
					}
				}
				return false
			}
			for i, st := range sc.Timeline {
				if p := fmt.Sprintf("timeline[%d] (%s)", i, st.ID); !listed(p) {
					t.Errorf("%s is neither exported nor listed:\n%s", p, res.Report())
				}
			}
			for i := range sc.Expectations {
				if p := fmt.Sprintf("expectations[%d]", i); !listed(p) {
					t.Errorf("%s is not listed", p)
				}
			}
			for i := range sc.Detectors {
				if p := fmt.Sprintf("detectors[%d]", i); !listed(p) {
					t.Errorf("%s is not listed", p)
				}
			}
			for i := range sc.Rollbacks {
				if p := fmt.Sprintf("rollbacks[%d]", i); !listed(p) {
					t.Errorf("%s is not listed", p)
				}
			}
			if res.Workflow != nil {
				got, err := res.YAML(name)
				if err != nil {
					t.Fatal(err)
				}
				for _, u := range res.Unmapped {
					if !strings.Contains(string(got), "#   - "+u.String()+"\n") {
						t.Errorf("the YAML's comment block lacks %q", u.String())
					}
				}
				validateWorkflowYAML(t, got)
			}
		})
	}
}

// everyAction is a scenario with each action and every field of a fault
// and a faultfs rule.
func everyAction(t *testing.T) *scenario.Scenario {
	t.Helper()
	const y = `
metadata: {name: every-action}
duration: 5m
storage: {kind: faultfs}
target: {kind: zeebe, zeebe: {brokers: 3, partitions: 2, replication: 3}}
detectors:
  - {name: my-pattern, pattern: 'went wrong'}
timeline:
  - {id: d, at: 10s, for: 20s, action: drop, fault: {dst: 10.1.0.0/16, port: 2049, proto: tcp, dir: in, prob: 0.25}}
  - {id: r, at: 10s, action: reject, fault: {dst: 10.3.0.1, port: 0, local_port: 2049, dir: both}}
  - {id: u, at: 15s, action: unreachable, fault: {dst: 10.2.0.9, route_type: blackhole}}
  - {id: lo, at: 16s, for: 10s, action: drop, fault: {dst: 127.0.0.1, match_original: true}}
  - {id: ld, at: 17s, for: 10s, action: unreachable, fault: {in: $leader:1, dst: $leader:2}}
  - {id: heal-r, at: 40s, action: heal, ref: all}
  - {id: p, at: 50s, action: pause, container: broker-1}
  - {id: up, at: 60s, action: unpause, container: broker-1}
  - {id: s, at: 1m10s, action: stop}
  - {id: rs, at: 1m20s, action: restart}
  - {id: k, at: 1m30s, action: kill}
  - {id: rk, at: 1m40s, action: restart}
  - {id: fs, at: 2m, action: faultfs-set, faultfs: {ops: [read, write], path: 'data/*.log', errno: EIO, latency: 10ms, prob: 0.125, offset: 1MB, length: 4KB}}
  - {id: fa, at: 2m, for: 30s, action: faultfs-set, faultfs: {ops: [any], errno: ENOSPC}}
  - {id: fc, at: 2m30s, action: faultfs-clear, ref: fs}
  - {id: rt, at: 3m, action: restart-target, drop_cache: true}
  - {id: w, at: 3m10s, for: 10s, action: wait}
  - {id: ev, on: target-exited, action: restart-target}
  - {id: after-w, on: step-done:w, delay: 5s, action: kill}
expectations:
  - {kind: fault-hits, step: d}
  - {kind: fault-no-hits, step: lo, cause: localio}
  - {kind: detector-fires, detector: my-pattern, within: 1m}
  - {kind: exit-code, exit_code: 0, within: 1m}
rollbacks:
  - {id: rb, action: unpause}
`
	sc, err := scenario.Decode([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestEveryAction pins what each action becomes.
func TestEveryAction(t *testing.T) {
	res, err := Export(everyAction(t), goldenOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := res.YAML("every-action")
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "every-action.workflow.yaml"), got)
	wf := validateWorkflowYAML(t, got)
	tm := map[string]v1alpha1.Template{}
	for _, x := range wf.Spec.Templates {
		tm[x.Name] = x
	}
	d := tm["d"].NetworkChaos
	if d == nil || d.Action != v1alpha1.LossAction || d.Loss.Loss != "25" || d.Direction != v1alpha1.To || d.ExternalTargets[0] != "10.1.0.0/16" {
		t.Errorf("d = %+v", d)
	}
	r := tm["r"].NetworkChaos
	if r == nil || r.Action != v1alpha1.PartitionAction || r.PartitionBehavior != v1alpha1.RejectPartitionBehavior || r.Direction != v1alpha1.Both || r.ExternalTargets[0] != "10.3.0.1" || *tm["r"].Deadline != "30s" {
		t.Errorf("r = %+v deadline %v", r, tm["r"].Deadline)
	}
	// wf went through the webhook's defaulting: the partition's
	// behaviour, left out, is drop.
	if u := tm["u"].NetworkChaos; u == nil || u.Action != v1alpha1.PartitionAction || u.PartitionBehavior != v1alpha1.DropPartitionBehavior || *tm["u"].Deadline != "25s" {
		t.Errorf("u = %+v", u)
	}
	if _, ok := tm["lo"]; ok {
		t.Error("a loopback drop was exported")
	}
	if _, ok := tm["ld"]; ok {
		t.Error("a fault between leaders was exported")
	}
	if p := tm["p"].PodChaos; p == nil || p.Action != v1alpha1.PodFailureAction || *tm["p"].Deadline != "10s" {
		t.Errorf("p = %+v", tm["p"])
	}
	if s := tm["s"].PodChaos; s == nil || s.Action != v1alpha1.PodFailureAction || *tm["s"].Deadline != "10s" {
		t.Errorf("s = %+v", tm["s"])
	}
	if _, ok := tm["rs"]; ok {
		t.Error("the restart that ends a stop became a pod-kill too")
	}
	if k := tm["k"].PodChaos; k == nil || k.Action != v1alpha1.ContainerKillAction || k.ContainerNames[0] != "zeebe" {
		t.Errorf("k = %+v", tm["k"])
	}
	if rk := tm["rk"].PodChaos; rk == nil || rk.Action != v1alpha1.PodKillAction {
		t.Errorf("rk = %+v", tm["rk"])
	}
	lat, flt := tm["fs-latency"].IOChaos, tm["fs-fault"].IOChaos
	if lat == nil || flt == nil || lat.Delay != "10ms" || flt.Errno != 5 || flt.Percent != 13 || flt.Path != "/usr/local/zeebe/data/data/*.log" ||
		!slices.Equal(flt.Methods, []v1alpha1.IoMethod{v1alpha1.Read, v1alpha1.Write}) || *tm["fs-fault"].Deadline != "30s" {
		t.Errorf("fs = %+v / %+v", lat, flt)
	}
	if fa := tm["fa"].IOChaos; fa == nil || fa.Methods != nil || fa.Errno != 28 || fa.Path != "" || fa.Percent != 100 {
		t.Errorf("fa = %+v", fa)
	}
	if w := tm["w"]; w.Type != v1alpha1.TypeSuspend || *w.Deadline != "10s" {
		t.Errorf("w = %+v", w)
	}
	if _, ok := tm["ev"]; ok {
		t.Error("a step on target-exited was exported without --at")
	}
	var whole []string
	for _, u := range res.Unmapped {
		if !u.Partial {
			whole = append(whole, u.Path)
		}
	}
	for _, p := range []string{"timeline[3] (lo)", "timeline[4] (ld)", "timeline[17] (ev)", "expectations[0]", "expectations[1]", "detectors[0]", "rollbacks[0] (rb)"} {
		if !slices.Contains(whole, p) {
			t.Errorf("%s not listed as not exported: %q", p, whole)
		}
	}
	report := res.Report()
	for _, want := range []string{"tcp port 2049", "the byte range", "drop_cache", "the freeze (SIGSTOP)", "route_type blackhole", "dir in", "prob 0.125", "LOCALIO", "container broker-1", "latency and errno together"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// TestAtPinsEvents: --at gives an event step a time, and steps chained to
// it follow; both are noted as approximations.
func TestAtPinsEvents(t *testing.T) {
	sc, err := scenario.LoadFile(filepath.Join(scenariosDir, "nfs-drop-on-replay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	o := goldenOptions(t)
	if err := o.Set("at", "slow-reads=35s"); err != nil {
		t.Fatal(err)
	}
	res, err := Export(sc, o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := res.YAML("scenarios/nfs-drop-on-replay.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "nfs-drop-on-replay-at-35s.workflow.yaml"), got)
	validateWorkflowYAML(t, got)
	want := []string{"timeline[1] (slow-reads) -> template slow-reads: NetworkChaos loss 80% to 10.0.0.5, 35s to 2m35s",
		"timeline[2] (block-replay) -> template block-replay: NetworkChaos partition (drop) to 10.0.0.5, 35s to 3m35s"}
	for _, w := range want {
		if !slices.Contains(res.Mapped, w) {
			t.Errorf("mapped lacks %q: %q", w, res.Mapped)
		}
	}
	if !strings.Contains(res.Report(), "instead of on replay-start") || !strings.Contains(res.Report(), "instead of on its first hit") {
		t.Errorf("approximations not reported:\n%s", res.Report())
	}
}

// TestUnknownFieldsAreListed: a field the exporter does not know (a new
// fault kind's parameter, say) is reported, not dropped.
func TestUnknownFieldsAreListed(t *testing.T) {
	type future struct {
		netfault.Spec `yaml:",inline"`
		Known         string            `yaml:"dst2"`
		Delay         duration.Duration `yaml:"delay"`
		Hidden        string            `yaml:"-"`
	}
	got := unknownFields(future{Spec: netfault.Spec{Dst: "x", Port: 1, Netns: "n", Label: "l"}, Known: "k", Delay: duration.Duration(time.Second), Hidden: "h"},
		"dst", "dst2")
	if want := []string{"port 1", "netns n", "delay 1s"}; !slices.Equal(got, want) {
		t.Errorf("unknownFields = %q, want %q", got, want)
	}
	// Every field a fault, a faultfs rule or a step can carry in YAML,
	// set: each is either read by the exporter or reported.
	for _, v := range []struct {
		typ   reflect.Type
		known []string
	}{{reflect.TypeFor[scenario.Fault](), faultFields}, {reflect.TypeFor[scenario.FaultfsRule](), faultfsFields}, {reflect.TypeFor[scenario.Step](), stepFields}} {
		val := reflect.New(v.typ).Elem()
		fill(val)
		reported := unknownFields(val.Interface(), v.known...)
		for _, name := range yamlNames(v.typ) {
			ok := slices.Contains(v.known, name)
			for _, r := range reported {
				ok = ok || strings.HasPrefix(r, name+" ")
			}
			if !ok {
				t.Errorf("%s field %s is neither read by the exporter nor reported", v.typ, name)
			}
		}
	}
}

func yamlNames(rt reflect.Type) []string {
	var out []string
	for k := 0; k < rt.NumField(); k++ {
		f := rt.Field(k)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		switch {
		case !f.IsExported() || tag == "-":
		case strings.Contains(opts, "inline"):
			out = append(out, yamlNames(f.Type)...)
		default:
			out = append(out, name)
		}
	}
	return out
}

// fill sets every settable field of v to a non-zero value.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for k := 0; k < v.NumField(); k++ {
			if v.Type().Field(k).IsExported() {
				fill(v.Field(k))
			}
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(0.5)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
	}
}

func TestBadOptions(t *testing.T) {
	sc, err := scenario.LoadFile(filepath.Join(scenariosDir, "nfs-random-drop-80.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sets [][2]string
		want string
	}{
		{[][2]string{{"namespace", "zeebe"}}, "selector is required"},
		{[][2]string{{"selector", "app=zeebe"}}, "server-address"},
		{[][2]string{{"selector", "app=zeebe"}, {"server-address", "10.0.0.5"}, {"mode", "fixed"}}, "needs a value"},
		{[][2]string{{"selector", "app=zeebe"}, {"server-address", "10.0.0.5"}, {"server-selector", "app=nfs"}}, "not both"},
		{[][2]string{{"selector", "app=zeebe"}, {"server-address", "10.0.0.5"}, {"at", "nowhere=1s"}}, `no step "nowhere"`},
		{[][2]string{{"selector", "app=zeebe"}, {"server-address", "10.0.0.5"}, {"at", "drop-80=1s"}}, "starts at 40s already"},
		{[][2]string{{"selector", "app"}}, `selector "app"`},
		{[][2]string{{"selector", "app=Zeebe Broker"}}, "label value"},
		{[][2]string{{"namespace", "Zeebe"}}, `namespace "Zeebe"`},
		{[][2]string{{"mode", "some"}}, `mode "some"`},
		{[][2]string{{"volume-path", "data"}}, "absolute path"},
		{[][2]string{{"server-address", "nfs server"}}, "IP address"},
		{[][2]string{{"at", "x=-1s"}}, "zero or more"},
		{[][2]string{{"flavour", "x"}}, `unknown option "flavour"`},
	} {
		var o Options
		var err error
		for _, kv := range c.sets {
			if err = o.Set(kv[0], kv[1]); err != nil {
				break
			}
		}
		if err == nil {
			_, err = Export(sc, o)
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want ErrInvalid mentioning %q", c.sets, err, c.want)
		}
	}
}

func TestServerSelector(t *testing.T) {
	sc, err := scenario.LoadFile(filepath.Join(scenariosDir, "nfs-full-drop.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var o Options
	for _, kv := range [][2]string{{"selector", "app=zeebe"}, {"server-selector", "app=nfs-server"}, {"server-namespace", "storage"}, {"mode", "one"}} {
		if err := o.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Export(sc, o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := res.YAML("x")
	if err != nil {
		t.Fatal(err)
	}
	wf := validateWorkflowYAML(t, got)
	var nc *v1alpha1.NetworkChaosSpec
	for _, x := range wf.Spec.Templates {
		if x.EmbedChaos != nil {
			nc = x.NetworkChaos
		}
	}
	if nc == nil || nc.Target == nil || nc.Target.Selector.Namespaces[0] != "storage" || nc.Target.Selector.LabelSelectors["app"] != "nfs-server" ||
		nc.ExternalTargets != nil || nc.Mode != v1alpha1.OneMode || nc.Selector.Namespaces[0] != "default" {
		t.Errorf("network chaos = %+v", nc)
	}
}

// TestDocWorkedExample keeps docs/chaos-mesh.md's worked example the real
// output: its YAML is the golden file, its report what Export reports.
func TestDocWorkedExample(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/chaos-mesh.md")
	if err != nil {
		t.Fatal(err)
	}
	_, example, ok := strings.Cut(string(doc), "## Worked example: nfs-random-drop-80")
	if !ok {
		t.Fatal("docs/chaos-mesh.md has no worked example for nfs-random-drop-80")
	}
	block := func(lang string) string {
		_, after, ok := strings.Cut(example, "```"+lang+"\n")
		if !ok {
			t.Fatalf("worked example has no %s block", lang)
		}
		body, _, _ := strings.Cut(after, "```\n")
		return body
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "nfs-random-drop-80.workflow.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := block("yaml"); got != string(golden) {
		t.Errorf("the worked example's YAML is not testdata/nfs-random-drop-80.workflow.yaml; got:\n%s", got)
	}
	sc, err := scenario.LoadFile(filepath.Join(scenariosDir, "nfs-random-drop-80.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var o Options
	for _, kv := range [][2]string{{"namespace", "zeebe"}, {"selector", "app=zeebe"}, {"server-address", "10.0.0.5"}} {
		if err := o.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Export(sc, o)
	if err != nil {
		t.Fatal(err)
	}
	want := "wrote chaos/nfs-random-drop-80.workflow.yaml (Workflow zeebe/nfs-random-drop-80, 2 chaos templates)\n" + res.Report()
	if got := block("text"); got != want {
		t.Errorf("the worked example's output is not the command's; got:\n%s\nwant:\n%s", got, want)
	}
}

// TestShapeMapping: netfault's delay and limit kinds become NetworkChaos
// delay, netem and bandwidth that Chaos Mesh's webhook takes.
func TestShapeMapping(t *testing.T) {
	for _, c := range []struct {
		action string
		f      netfault.Spec
		want   string
		check  func(*v1alpha1.NetworkChaosSpec) bool
	}{
		{actionDelay, netfault.Spec{Delay: 200 * time.Millisecond, Jitter: 50 * time.Millisecond, Correlation: 25, Reorder: 10},
			"NetworkChaos delay 200ms ± 50ms", func(s *v1alpha1.NetworkChaosSpec) bool {
				return s.Action == v1alpha1.DelayAction && s.Delay.Latency == "200ms" && s.Delay.Jitter == "50ms" &&
					s.Delay.Correlation == "25" && s.Delay.Reorder.Reorder == "10" && s.Loss == nil
			}},
		{actionDelay, netfault.Spec{Delay: time.Second, Loss: 5, Duplicate: 1, Corrupt: 0.5},
			"NetworkChaos netem, delay 1s, loss 5%, duplicate 1%, corrupt 0.5%", func(s *v1alpha1.NetworkChaosSpec) bool {
				return s.Action == v1alpha1.NetemAction && s.Delay.Latency == "1s" && s.Loss.Loss == "5" &&
					s.Duplicate.Duplicate == "1" && s.Corrupt.Corrupt == "0.5"
			}},
		{actionLimit, netfault.Spec{Rate: 1_000_000},
			"NetworkChaos bandwidth 1mbit", func(s *v1alpha1.NetworkChaosSpec) bool {
				return s.Action == v1alpha1.BandwidthAction && s.Bandwidth.Rate == "1mbit" && s.Bandwidth.Buffer == 1514 && s.Bandwidth.Limit == defaultQueue
			}},
		{actionLimit, netfault.Spec{Rate: 123_456_789, Burst: 64 << 10},
			"NetworkChaos bandwidth 123456789bit", func(s *v1alpha1.NetworkChaosSpec) bool {
				return s.Bandwidth.Rate == "123456789bit" && s.Bandwidth.Buffer == 64<<10
			}},
	} {
		spec := &NetworkChaosSpec{PodSelector: PodSelector{Selector: PodSelectorSpec{Namespaces: []string{"zeebe"}, LabelSelectors: map[string]string{"app": "zeebe"}}, Mode: AllMode},
			Direction: DirectionTo, ExternalTargets: []string{"10.0.0.5"}}
		what, _ := shapeSpec(spec, c.action, c.f)
		if what != c.want {
			t.Errorf("%s %+v: what = %q, want %q", c.action, c.f, what, c.want)
		}
		wf := &Workflow{APIVersion: APIVersion, Kind: KindWorkflow, Metadata: ObjectMeta{Name: "w"}, Spec: WorkflowSpec{Entry: "s", Templates: []Template{
			{Name: "s", Type: TypeSerial, Children: []string{"n"}},
			{Name: "n", Type: TypeNetworkChaos, Deadline: deadline(time.Minute), EmbedChaos: &EmbedChaos{NetworkChaos: spec}}}}}
		got, err := (&Result{Workflow: wf}).YAML("test")
		if err != nil {
			t.Fatal(err)
		}
		real := validateWorkflowYAML(t, got)
		if s := real.Spec.Templates[1].NetworkChaos; !c.check(s) {
			t.Errorf("%s %+v: decoded spec %+v", c.action, c.f, s)
		}
	}
}
