package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExportChaosMesh(t *testing.T) {
	dir := t.TempDir()
	out, errs, code := runCLI(t, context.Background(), "export", "chaos-mesh", "../../scenarios/nfs-random-drop-80.yaml",
		"--namespace", "zeebe", "--selector", "app=zeebe", "--set", "server-address=10.0.0.5", "-o", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errs)
	}
	file := filepath.Join(dir, "nfs-random-drop-80.workflow.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile("../../pkg/export/chaosmesh/testdata/nfs-random-drop-80.workflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The same Workflow as the golden file (its header names the path given).
	body := func(b []byte) string { _, after, _ := strings.Cut(string(b), "apiVersion:"); return after }
	if body(data) != body(golden) {
		t.Errorf("written workflow differs from the golden file:\n%s", data)
	}
	for _, want := range []string{"wrote " + file, "Not exported", "expectations[5]", "tcp port 2049"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Without -o: the YAML on stdout, the list on stderr.
	out, errs, code = runCLI(t, context.Background(), "export", "chaos-mesh", "../../scenarios/nfs-random-drop-80.yaml",
		"--namespace", "zeebe", "--selector", "app=zeebe", "--server-address", "10.0.0.5")
	if code != 0 || body([]byte(out)) != body(golden) || !strings.Contains(errs, "expectations[5]") {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

func TestExportChaosMeshErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"../../scenarios/nfs-full-drop.yaml", "--selector", "app=zeebe"}, 2, "server-address"},
		{[]string{"../../scenarios/nfs-full-drop.yaml", "--server-address", "10.0.0.5"}, 2, "selector is required"},
		{[]string{"../../scenarios/nfs-full-drop.yaml", "--selector", "app", "--server-address", "10.0.0.5"}, 2, `"app"`},
		{[]string{"../../scenarios/nfs-full-drop.yaml", "--selector", "app=zeebe", "--set", "target.kind=toaster"}, 2, "toaster"},
		{[]string{"../../scenarios/broker-unreachable.yaml", "--selector", "app=zeebe"}, 1, "nothing written"},
	} {
		dir := t.TempDir()
		out, errs, code := runCLI(t, context.Background(), append([]string{"export", "chaos-mesh", "-o", dir}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errs, tc.code, tc.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%v: wrote %d files (stdout %q)", tc.args, len(entries), out)
		}
	}
}
