package live

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/journal"
)

func TestRender(t *testing.T) {
	s := engine.Status{Scenario: "nfs-full-drop", Started: true, Elapsed: 45 * time.Second, Duration: 4 * time.Minute,
		Next:     []engine.StepStatus{{ID: "heal", Action: "heal", At: time.Minute}, {ID: "block", Action: "drop", At: -1, On: "replay-start"}},
		Faults:   []engine.FaultStatus{{Step: "drop-nfs", Kind: "drop", Packets: 35, Bytes: 2064000, Counted: true}},
		Load:     &journal.LoadSample{Source: "probe", AppendRate: 1234},
		Hits:     map[string]int{"msync-ioexception": 1},
		Verdicts: []engine.Verdict{{Name: "msync fires", State: engine.Held}, {Name: "raft", State: engine.Pending}}}
	out := Render(s, []string{"09:02:00 drop-nfs applied"})
	for _, want := range []string{"nfs-full-drop", "45s / 4m0s", "heal heal in 15s", "drop block on replay-start", "35 pkts", "1234 appends/s", "msync-ioexception×1", "✔ msync fires", "… raft", "drop-nfs applied"} {
		if !strings.Contains(out, want) {
			t.Errorf("render lacks %q:\n%s", want, out)
		}
	}
}

func TestViewRedrawsInPlace(t *testing.T) {
	var buf bytes.Buffer
	v := &View{W: &buf, Every: 5 * time.Millisecond}
	v.status = func() engine.Status { return engine.Status{Scenario: "x", Duration: time.Minute} }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	v.Run(ctx)
	out := buf.String()
	if !strings.Contains(out, "\x1b[2K") || !strings.Contains(out, "A") || strings.Count(out, "nfslab run x") < 2 {
		t.Fatalf("no in-place redraws: %q", out)
	}
	if IsTerminal(&buf) {
		t.Error("a buffer is not a terminal")
	}
}

func TestPlain(t *testing.T) {
	var buf bytes.Buffer
	Plain(&buf)(engine.Note{Time: time.Date(2025, 6, 12, 9, 2, 0, 0, time.UTC), Kind: "fault", Text: "drop-nfs applied"})
	if got := buf.String(); got != "09:02:00.000 fault    drop-nfs applied\n" {
		t.Fatalf("%q", got)
	}
}
