package probe

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/privtest"
)

func TestParseProgress(t *testing.T) {
	for _, c := range []struct {
		line string
		want Progress
		ok   bool
	}{
		{"probe: append rate=1234/s records=5000 segments=3 forces=50", Progress{Kind: "append", Rate: 1234, Records: 5000, Segments: 3, Forces: 50}, true},
		{"probe: append rate=900/s records=9000 segments=3 forces=60 force_p50_ms=1.250 force_p99_ms=17004.500", Progress{Kind: "append", Rate: 900, Records: 9000, Segments: 3, Forces: 60, ForceP50: 1250 * time.Microsecond, ForceP99: 17004500 * time.Microsecond}, true},
		{"probe: replay segment=3/10 id=3 records=1040", Progress{Kind: "replay", Segment: 3, Segments: 10, Records: 1040}, true},
		{"probe: replay mapped segments=6", Progress{Kind: "replay-mapped", Segments: 6}, true},
		{"probe: replay done segments=10 records=9000 elapsed=120ms", Progress{Kind: "replay-done", Segments: 10, Records: 9000, Elapsed: 120 * time.Millisecond}, true},
		{"probe: append done records=3000 segments=3 forces=32 elapsed=38ms", Progress{Kind: "append-done", Records: 3000, Segments: 3, Forces: 32, Elapsed: 38 * time.Millisecond}, true},
		{"probe: force failed: java.io.UncheckedIOException: java.io.IOException: Input/output error (msync with parameter MS_SYNC failed)", Progress{Kind: "force-failed", Err: "java.io.UncheckedIOException: java.io.IOException: Input/output error (msync with parameter MS_SYNC failed)"}, true},
		{"Exception in thread \"main\" java.io.UncheckedIOException", Progress{}, false},
		{"probe: something else", Progress{}, false},
	} {
		got, ok := ParseProgress(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("ParseProgress(%q) = %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
		}
	}
	rates := Rates([]Line{{Text: "probe: append rate=10/s records=10"}, {Text: "x"}, {Text: "probe: append rate=20/s records=30"}})
	if !slices.Equal(rates, []float64{10, 20}) {
		t.Errorf("Rates = %v", rates)
	}
}

func TestConfig(t *testing.T) {
	c := Config{Dir: "/d", SegmentSize: 1 << 20, Batch: 10, Rate: 500, Duration: 2 * time.Second, Mode: ModeReplayOnly}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := "--dir /d --segment-size 1048576 --batch 10 --rate 500 --duration 2000ms --replay-only"
	if got := strings.Join(c.Args(), " "); got != want {
		t.Errorf("Args = %s, want %s", got, want)
	}
	for _, bad := range []struct {
		c    Config
		want string
	}{
		{Config{}, "dir is required"},
		{Config{Dir: "/d", SegmentSize: 100}, "segment size 100"},
		{Config{Dir: "/d", SegmentSize: 4096, RecordSize: 5000}, "record size 5000"},
		{Config{Dir: "/d", Rate: -1}, "rate -1"},
		{Config{Dir: "/d", Mode: "sideways"}, `mode "sideways"`},
	} {
		if err := bad.c.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Validate(%+v) = %v, want %q", bad.c, err, bad.want)
		}
	}
	argv := Command("/cls", "/err", c)
	if !slices.Contains(argv, "-XX:ErrorFile=/err/hs_err_pid%p.log") || !slices.Contains(argv, "-XX:+UseCRC32CIntrinsics") {
		t.Errorf("Command = %v", argv)
	}
}

// The probe builds with the machine's javac and runs on a local directory.
func TestBuildAndRun(t *testing.T) {
	privtest.Tools(t, "java", "javac")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cache := t.TempDir()
	cd, err := Build(ctx, "", cache)
	if err != nil {
		t.Fatal(err)
	}
	if cd2, err := Build(ctx, "", cache); err != nil || cd2 != cd {
		t.Fatalf("second Build = %q, %v; want cached %q", cd2, err, cd)
	}
	// Class file major version 61 is Java 17: the class runs on bookworm's
	// JRE 17 and trixie's JRE 21 whatever JDK compiled it.
	cls, err := os.ReadFile(filepath.Join(cd, "JournalProbe.class"))
	if err != nil || len(cls) < 8 {
		t.Fatalf("reading the class: %v", err)
	}
	if major := int(cls[6])<<8 | int(cls[7]); major != 61 {
		t.Errorf("class file major version %d, want 61 (javac --release %s)", major, JavaRelease)
	}
	if ok, err := CRC32CIntrinsic(ctx, ""); err != nil || !ok {
		t.Errorf("CRC32C intrinsic = %v, %v (the SIGBUS crash needs it)", ok, err)
	}
	dir := t.TempDir()
	var n int
	res, err := Run(ctx, cd, Config{Dir: dir, SegmentSize: 256 << 10, Rate: 3000, Duration: 1500 * time.Millisecond, ErrorDir: t.TempDir()},
		func(Line) { n++ })
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %d, %v\n%s", res.ExitCode, err, res.Output())
	}
	if r := Rates(res.Lines); len(r) == 0 || r[0] < 1000 {
		t.Errorf("append rates %v, want about 3000/s\n%s", r, res.Output())
	}
	if n != len(res.Lines) {
		t.Errorf("onLine saw %d lines, result has %d", n, len(res.Lines))
	}
	res, err = Run(ctx, cd, Config{Dir: dir, SegmentSize: 256 << 10, Mode: ModeReplayOnly}, nil)
	if err != nil || res.ExitCode != 0 || !res.Contains("probe: replay done") {
		t.Fatalf("replay = %d, %v\n%s", res.ExitCode, err, res.Output())
	}
	if res.ErrorDir != "" {
		t.Errorf("clean run kept its temporary error directory %s", res.ErrorDir)
	}
}
