package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/nfslab/nfslab/pkg/container"
)

type zeebeCLI struct {
	fake     *container.Fake
	connects int
	out, err bytes.Buffer
}

func newZeebeCLI() *zeebeCLI {
	f := container.NewFake(nil)
	f.PullErr = errors.New("initializing source docker://gcr.io/zeebe-io/zeebe:8.7.5-root: pinging container registry gcr.io: dial tcp: lookup gcr.io: no such host")
	return &zeebeCLI{fake: f}
}

func (z *zeebeCLI) run(args ...string) error {
	z.out.Reset()
	z.err.Reset()
	g := &globals{stdout: &z.out, stderr: &z.err, logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	connect := func(context.Context, podmanOpts, *globals) (container.Runtime, func(), error) {
		z.connects++
		return z.fake, func() {}, nil
	}
	parent := &cobra.Command{Use: "zeebe", SilenceErrors: true, SilenceUsage: true}
	parent.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	addAll(parent, zeebeContainerCmds(g, connect))
	parent.SetArgs(args)
	parent.SetOut(&z.out)
	parent.SetErr(&z.err)
	return parent.ExecuteContext(context.Background())
}

func TestZeebeUpMissingImageFailsFast(t *testing.T) {
	z := newZeebeCLI()
	err := z.run("up", "--data", t.TempDir())
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("up without image = %v (exit %d)", err, exitCode(err))
	}
	for _, want := range []string{"not in local storage", "no registry is reachable", "podman load"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !strings.Contains(z.err.String(), "pulling") {
		t.Errorf("no pull progress shown: %q", z.err.String())
	}
	if l, _ := z.fake.List(context.Background(), nil); len(l) != 0 {
		t.Errorf("containers left: %v", l)
	}
	err = z.run("up", "--data", t.TempDir(), "--pull", "never")
	if err == nil || !strings.Contains(err.Error(), "--pull=never") {
		t.Errorf("--pull never: %v", err)
	}
}

func TestZeebeUpBadInputIsUsageError(t *testing.T) {
	z := newZeebeCLI()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"up", "--data", dir, "--segment-size", "16M"},
		{"up", "--data", dir, "--snapshot-period", "8 hours"},
		{"up", "--data", dir, "--cpu-threads", "1000"},
		{"up", "--data", dir, "--env", "NOEQUALS"},
		{"up", "--data", "relative"},
		{"up", "--data", dir + "/missing"},
		{"up", "--data", dir, "--network", "slirp"},
		{"up"},
		{"down", "--all", "--name", "x"},
		{"logs", "--tail", "-1"},
	} {
		err := z.run(args...)
		if exitCode(err) != 2 {
			t.Errorf("%v: exit %d (%v), want 2", args, exitCode(err), err)
		}
	}
	if z.connects != 0 {
		t.Errorf("bad input reached podman %d times", z.connects)
	}
}

func TestZeebeUpDownLogs(t *testing.T) {
	z := newZeebeCLI()
	z.fake.AddImage("camunda/zeebe:8.7.5")
	dir := t.TempDir()
	if err := z.run("up", "--data", dir, "--image", "camunda/zeebe:8.7.5", "--env", "ZEEBE_LOG_LEVEL=debug",
		"--segment-size", "32MB", "--wait-ready", "0", "--run-id", "r7"); err != nil {
		t.Fatal(err)
	}
	s, err := z.fake.SpecOf(container.DefaultZeebeName)
	if err != nil {
		t.Fatal(err)
	}
	if s.Env["ZEEBE_BROKER_DATA_LOGSEGMENTSIZE"] != "32MB" || s.Env["ZEEBE_BROKER_DATA_SNAPSHOTPERIOD"] != "8h" ||
		s.Env["ZEEBE_LOG_LEVEL"] != "debug" || s.Mounts[0].Source != dir || s.Labels[container.LabelRun] != "r7" {
		t.Errorf("spec %+v", s)
	}
	// A second up with the same name: 409 with a hint.
	if err := z.run("up", "--data", dir, "--image", "camunda/zeebe:8.7.5", "--wait-ready", "0"); err == nil || !strings.Contains(err.Error(), "zeebe down") {
		t.Errorf("second up: %v", err)
	}
	_ = z.fake.AddLog(container.DefaultZeebeName, container.Stdout, "Partition-1 recovered, marking it as healthy")
	_ = z.fake.AddLog(container.DefaultZeebeName, container.Stderr, "# SIGBUS (0x7)")
	if err := z.run("logs"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(z.out.String(), "recovered") || !strings.Contains(z.err.String(), "SIGBUS") {
		t.Errorf("logs: stdout %q stderr %q", z.out.String(), z.err.String())
	}
	if err := z.run("down"); err != nil || !strings.Contains(z.out.String(), "removed "+container.DefaultZeebeName) {
		t.Errorf("down: %v, %q", err, z.out.String())
	}
	if err := z.run("down"); err != nil || !strings.Contains(z.out.String(), "nothing to do") {
		t.Errorf("second down: %v, %q", err, z.out.String())
	}
	// --all removes every nfslab zeebe container and nothing else.
	z.fake.AddImage(container.DefaultZeebeImage)
	for _, n := range []string{"zb-0", "zb-1"} {
		if err := z.run("up", "--data", dir, "--name", n, "--wait-ready", "0"); err != nil {
			t.Fatal(err)
		}
	}
	nfs := container.NFSServerSpec{ExportDir: dir}.WithDefaults()
	z.fake.AddImage(nfs.Image)
	if _, err := container.Run(context.Background(), z.fake, nfs.ContainerSpec()); err != nil {
		t.Fatal(err)
	}
	if err := z.run("down", "--all"); err != nil {
		t.Fatal(err)
	}
	if got := z.out.String(); !strings.Contains(got, "removed zb-1\nremoved zb-0") {
		t.Errorf("down --all: %q", got)
	}
	if _, err := z.fake.Inspect(context.Background(), nfs.Name); err != nil {
		t.Errorf("down --all removed the nfs server: %v", err)
	}
}
