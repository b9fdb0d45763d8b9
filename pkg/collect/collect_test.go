package collect

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCollect(t *testing.T) {
	run := t.TempDir()
	files := map[string]string{
		"journal.jsonl":                   `{"type":"run-start"}` + "\n",
		"logs/probe.log":                  "probe: start\n",
		"logs/hs_err_pid42.log":           "# SIGBUS (0x7)\n",
		"backing/journal-1.log":           "segment",
		"collect-20250101T000000Z.tar.gz": "old bundle",
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Join(run, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(run, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(run, "mnt"), 0o755)
	os.WriteFile(filepath.Join(run, "mnt", "hidden"), []byte("x"), 0o644)
	var ran []string
	out, err := Collect(context.Background(), run, Options{
		Now: func() time.Time { return time.Date(2025, 6, 12, 9, 2, 0, 0, time.UTC) },
		Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
			ran = append(ran, name)
			if name == "ip6tables-save" {
				return nil, errors.New("not found")
			}
			return []byte("# " + name + "\n"), nil
		},
		ReadFile: func(p string) ([]byte, error) {
			return []byte("device 10.213.0.2:/ mounted on /run/nfslab/mnt/x with fstype nfs4\n"), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(out) != "collect-20250612T090200Z.tar.gz" {
		t.Errorf("bundle %s", out)
	}
	got := read(t, out)
	base := filepath.Base(run) + "/"
	for _, want := range []string{"journal.jsonl", "logs/probe.log", "logs/hs_err_pid42.log", "backing/journal-1.log",
		"state/iptables-save.txt", "state/ip_route_show_table_all.txt", "state/mountstats.txt", "MANIFEST.txt"} {
		if _, ok := got[base+want]; !ok {
			t.Errorf("bundle lacks %s (has %v)", want, keys(got))
		}
	}
	for _, not := range []string{"mnt/hidden", "collect-20250101T000000Z.tar.gz"} {
		if _, ok := got[base+not]; ok {
			t.Errorf("bundle has %s", not)
		}
	}
	if !strings.Contains(got[base+"MANIFEST.txt"], "ip6tables-save: not found") {
		t.Errorf("manifest: %s", got[base+"MANIFEST.txt"])
	}
	if got[base+"logs/hs_err_pid42.log"] != "# SIGBUS (0x7)\n" {
		t.Error("hs_err content differs")
	}
	if len(ran) != len(Commands) {
		t.Errorf("ran %v", ran)
	}
}

func TestCollectMissingRun(t *testing.T) {
	if _, err := Collect(context.Background(), filepath.Join(t.TempDir(), "nope"), Options{}); err == nil {
		t.Fatal("no error for a missing run directory")
	}
}

func read(t *testing.T, path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

func keys(m map[string]string) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	return k
}
