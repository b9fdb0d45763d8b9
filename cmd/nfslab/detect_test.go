package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfslab/nfslab/pkg/journal"
)

func runNFSLab(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(&out, &errb)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errb.String(), err
}

func TestDetectCommand(t *testing.T) {
	seed := filepath.Join("..", "..", "pkg", "detect", "testdata", "seed000-replay-sigbus.log")
	out, _, err := runNFSLab(t, "", "detect", seed)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2025-06-12 09:25:00.543 replay-start line 1", "jvm-sigbus", `frame="v  ~StubRoutines::updateBytesCRC32C 0x00007f89ec4601a5"`,
		"hs-err-file", `path="/usr/local/zeebe/hs_err_pid2.log"`, "    | #  SIGBUS (0x7) at pc="} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	b, err := os.ReadFile(filepath.Join("..", "..", "pkg", "detect", "testdata", "seed000-msync.log"))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err = runNFSLab(t, string(b), "detect", "--json", "--custom", "uncaught=An uncaught exception", "-")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var h journal.Hit
		if err := json.Unmarshal([]byte(l), &h); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		names = append(names, h.Detector)
	}
	if strings.Join(names, ",") != "uncaught,msync-ioexception" && strings.Join(names, ",") != "msync-ioexception,uncaught" {
		t.Errorf("json hits %v", names)
	}

	out, _, err = runNFSLab(t, string(b), "detect", "--detector", "raft-inactive", "--count", "-")
	if err != nil || !strings.Contains(out, "30 lines, no hits") {
		t.Errorf("--count: %q %v", out, err)
	}
}

func TestDetectCommandErrors(t *testing.T) {
	for _, args := range [][]string{
		{"detect"},
		{"detect", "--detector", "nope", "-"},
		{"detect", "--custom", "Bad Name=x", "-"},
		{"detect", "--custom", "x=(", "-"},
	} {
		_, _, err := runNFSLab(t, "", args...)
		if exitCode(err) != 2 {
			t.Errorf("%v: exit %d (%v), want 2", args, exitCode(err), err)
		}
	}
	_, _, err := runNFSLab(t, "", "detect", filepath.Join(t.TempDir(), "missing.log"))
	if err == nil || exitCode(err) != 1 {
		t.Errorf("missing file: %v", err)
	}
	out, _, err := runNFSLab(t, "", "detect", "--list")
	if err != nil || !strings.Contains(out, "msync-ioexception") {
		t.Errorf("--list: %v %s", err, out)
	}
}
