package report

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/journal"
)

func render(t *testing.T, recs []journal.Record) (md, h string) {
	t.Helper()
	r := Build(recs)
	var a, b bytes.Buffer
	if err := WriteMarkdown(&a, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	return a.String(), b.String()
}

// section returns the text of the markdown section starting at heading.
func section(md, heading string) string {
	i := strings.Index(md, "\n"+heading+"\n")
	if i < 0 {
		return ""
	}
	rest := md[i+len(heading)+2:]
	level := strings.Count(strings.Fields(heading)[0], "#")
	re := regexp.MustCompile(`(?m)^#{1,` + string(rune('0'+level)) + `} `)
	if j := re.FindStringIndex(rest); j != nil {
		rest = rest[:j[0]]
	}
	return rest
}

func TestMarkdownShape(t *testing.T) {
	md, _ := render(t, fullDrop(t, true))
	if !strings.HasPrefix(md, "# How does Zeebe behave when NFS drops everything\n\n**TL;DR;** PASSED: all 3 expectations held in 1 experiment(s).") {
		t.Fatalf("title/TL;DR:\n%s", md[:300])
	}
	if !strings.Contains(md, "Seen: deadline-exceeded ×1 (first at +32s), msync-ioexception ×1 (first at +55.2s), raft-inactive ×1") {
		t.Errorf("TL;DR lacks the hit summary")
	}
	// Blog order: Setup, then the experiment's Expected / Actual / Results.
	var last int
	for _, h := range []string{"## Setup", "## Experiment 1: How does Zeebe behave when NFS drops everything", "### Expected", "### Actual", "### Results"} {
		i := strings.Index(md, "\n"+h+"\n")
		if i < last {
			t.Fatalf("%q missing or out of order", h)
		}
		last = i
	}
	setup := section(md, "## Setup")
	for _, want := range []string{"- scenario: `nfs-full-drop`", "- storage: nfs (knfsd in a qemu guest), mount options soft,timeo=10,retrans=2"} {
		if !strings.Contains(setup, want) {
			t.Errorf("Setup lacks %q:\n%s", want, setup)
		}
	}
	if ex := section(md, "### Expected"); !strings.Contains(ex, "Raft goes INACTIVE") || !strings.Contains(ex, "- fault f1 matched traffic") {
		t.Errorf("Expected:\n%s", ex)
	}
	actual := section(md, "### Actual")
	for _, want := range []string{
		"| 0 | +30s | +30s (4ms) | drop | all tcp to 10.0.2.2:2049 for 40s |", // timeline with lag
		"| `f1` | drop | +30s | +1m10s | 35 | 2359280 |",                      // fault counters
		"--dport 2049 -m comment --comment nfslab:f1 -j DROP",                 // exact rule
		"| before faults | 30 | 5.00 | 5.00 | none | 15ms |",                  // load phases
		"| during faults | 40 | 0.00 | 0.00 | DeadlineExceeded 80, Unavailable 42 | 0s |",
		"#### `msync-ioexception` at +55.2s in zeebe:812",
		"error=`Input/output error`, partition=`1`",
		"java.io.UncheckedIOException: java.io.IOException: Input/output error (msync with parameter MS_SYNC failed)", // evidence
		"        ... 24 more",
		"INFO io.atomix.raft.impl.RaftContext - Transitioning to INACTIVE",
		"- +1m30s recovery measured 11 s after heal",
	} {
		if !strings.Contains(actual, want) {
			t.Errorf("Actual lacks %q", want)
		}
	}
	res := section(md, "### Results")
	for _, want := range []string{"- msync-ioexception fires within 60s of the drop: **✅ held** (fired at +25.2s after the drop)", "- verdict: **PASSED**", "- rolled back: f1"} {
		if !strings.Contains(res, want) {
			t.Errorf("Results lacks %q:\n%s", want, res)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
}

func TestMarkdownFailedAndUnfinished(t *testing.T) {
	md, h := render(t, fullDrop(t, false))
	if !strings.Contains(md, "**TL;DR;** FAILED: 2 of 3 expectations held; not met: partition healthy within 30s of heal.") ||
		!strings.Contains(md, "**❌ did not hold**") || !strings.Contains(md, "- verdict: **FAILED**") {
		t.Errorf("failed run:\n%s", md)
	}
	if !strings.Contains(h, `class="tldr fail"`) {
		t.Error("HTML TL;DR not marked failed")
	}
	recs := fullDrop(t, true)
	md, _ = render(t, recs[:len(recs)-1]) // crashed before run-end
	if !strings.Contains(md, "FAILED") || !strings.Contains(md, "**did not finish**") {
		t.Errorf("unfinished run:\n%s", section(md, "### Results"))
	}
	// Repeat: two experiments.
	two := append(fullDrop(t, true), fullDrop(t, false)...)
	two[0].Run.Iteration = 1
	md, _ = render(t, two)
	if !strings.Contains(md, "## Experiment 2:") || !strings.Contains(md, "(experiment 2)") {
		t.Errorf("two experiments:\n%s", md[:400])
	}
	// Zero fault packets are called out.
	recs = fullDrop(t, true)
	for i := range recs {
		if recs[i].Counters != nil {
			c := *recs[i].Counters
			c.Packets = 0
			recs[i].Counters = &c
		}
	}
	md, _ = render(t, recs)
	if !strings.Contains(md, "**This fault matched no packets.**") {
		t.Error("0-packet fault not called out")
	}
}

func TestHTMLSelfContained(t *testing.T) {
	_, h := render(t, fullDrop(t, true))
	if n := strings.Count(h, `<svg class="plot"`); n != 3 {
		t.Errorf("%d plots, want throughput, errors, latency", n)
	}
	for _, id := range []string{`id="exp1-throughput"`, `id="exp1-errors"`, `id="exp1-latency"`} {
		if !strings.Contains(h, id) {
			t.Errorf("missing plot %s", id)
		}
	}
	if n := strings.Count(h, `class="fault-window"`); n != 3 {
		t.Errorf("%d fault-window rects, want one per plot", n)
	}
	if n := strings.Count(h, `class="hit-marker"`); n != 12 {
		t.Errorf("%d hit markers, want 4 hits x 3 plots", n)
	}
	for _, want := range []string{">msync-ioexception</text>", ">raft-inactive</text>", "drop f1 (35 pkts)", "<polyline", FaultFill} {
		if !strings.Contains(h, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	lower := strings.ToLower(h)
	for _, bad := range []string{"http://", "https://", "<script", "src=", "@import", "url(", "<link", "//fonts"} {
		if strings.Contains(lower, bad) {
			t.Errorf("HTML contains %q: it must load nothing", bad)
		}
	}
	// Evidence is escaped, not interpreted.
	if strings.Contains(h, "<b>&amp;</b>") || !strings.Contains(h, "&lt;b&gt;&amp;amp;&lt;/b&gt;") {
		t.Error("evidence not HTML-escaped")
	}
}

func TestWriteDir(t *testing.T) {
	dir := t.TempDir()
	w, err := journal.Create(filepath.Join(dir, journal.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range fullDrop(t, true) {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{MarkdownName, HTMLName} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil || len(b) < 1000 {
			t.Fatalf("%s: %d bytes, %v", n, len(b), err)
		}
	}
	if err := WriteDir(t.TempDir()); err == nil {
		t.Error("missing journal accepted")
	}
}

func TestEmptyAndProbe(t *testing.T) {
	md, h := render(t, nil)
	if !strings.Contains(md, "# nfslab run") || !strings.Contains(h, "<h1>nfslab run</h1>") {
		t.Error("empty journal")
	}
	recs := []journal.Record{{Time: at(0), Type: journal.TypeRunStart, Run: &journal.Run{Scenario: "faultfs-full-drop"}}}
	for s := 1; s <= 20; s++ {
		rate := 900.0
		if s > 10 {
			rate = 0
		}
		ls := &journal.LoadSample{T: at(float64(s)), Interval: time.Second, Source: "probe", AppendRate: rate}
		switch {
		case s <= 10:
			ls.ForceP50, ls.ForceP99 = time.Duration(s)*time.Millisecond, 20*time.Millisecond
		case s == 15: // the line after a stalled force()
			ls.ForceP50, ls.ForceP99 = 3*time.Millisecond, 17*time.Second
		}
		recs = append(recs, journal.Record{Time: at(float64(s)), Type: journal.TypeLoadSample, Load: ls})
	}
	recs = append(recs, journal.Record{Time: at(10), Type: journal.TypeFaultApplied, Fault: &journal.Fault{ID: "ff1", Kind: "faultfs-eio"}})
	md, h = render(t, recs)
	if !strings.Contains(md, "Load (JVM journal probe):") || !strings.Contains(md, "| before faults | 10 | 900.0 | 6ms | 20ms | none |") ||
		!strings.Contains(md, "| during faults | 10 | 0.0 | 3ms | 17s | none |") {
		t.Errorf("probe load:\n%s", md)
	}
	if !strings.Contains(h, "JVM probe appends per second") || !strings.Contains(h, "Latency: JVM probe force() (msync)") || strings.Count(h, `<svg class="plot"`) != 3 {
		t.Error("probe plots: want throughput, errors and force() latency")
	}
	if !strings.Contains(h, "<th>force() p99</th>") || !strings.Contains(h, "<td>during faults</td><td>10</td><td>0.0</td><td>3ms</td><td>17s</td>") {
		t.Errorf("HTML load table lacks force() latency:\n%s", h)
	}
	// Without force() figures (an older probe) there is no latency plot.
	var noForce []journal.Record
	for _, r := range recs {
		if r.Load != nil {
			l := *r.Load
			l.ForceP50, l.ForceP99 = 0, 0
			r.Load = &l
		}
		noForce = append(noForce, r)
	}
	if _, h := render(t, noForce); strings.Count(h, `<svg class="plot"`) != 2 {
		t.Error("a probe run without force() figures has a latency plot")
	}
}

// Every kind of fault the engine journals is shaded in each plot with its
// kind and ID: the shaping faults and the server's own, not only drops.
func TestFaultWindowsOfEveryKind(t *testing.T) {
	recs := []journal.Record{{Time: at(0), Type: journal.TypeRunStart, Run: &journal.Run{Scenario: "mixed"}}}
	for s := 1; s <= 30; s++ {
		recs = append(recs, journal.Record{Time: at(float64(s)), Type: journal.TypeLoadSample,
			Load: &journal.LoadSample{T: at(float64(s)), Interval: time.Second, Source: "probe", AppendRate: 500, ForceP50: time.Millisecond, ForceP99: 3 * time.Millisecond}})
	}
	for i, k := range []string{"delay", "limit", "server-restart", "unexport", "fill"} {
		id := "x" + string(rune('1'+i))
		recs = append(recs,
			journal.Record{Time: at(float64(2 + 5*i)), Type: journal.TypeFaultApplied, Fault: &journal.Fault{ID: id, Kind: k}},
			journal.Record{Time: at(float64(5 + 5*i)), Type: journal.TypeFaultHealed, Fault: &journal.Fault{ID: id, Kind: k}})
	}
	_, h := render(t, recs)
	if n := strings.Count(h, `class="fault-window"`); n != 5*3 {
		t.Errorf("%d fault-window rects, want 5 faults x 3 plots", n)
	}
	for _, want := range []string{"<title>delay x1</title>", "<title>limit x2</title>", "<title>server-restart x3</title>", "<title>unexport x4</title>", "<title>fill x5</title>"} {
		if !strings.Contains(h, want) {
			t.Errorf("HTML lacks the shaded window %q", want)
		}
	}
}
