package nfsserver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/container"
)

// containerHost is a fake host with nfsd loaded and the entrypoint's tools
// as small (non-ELF) files, so the image's rootfs can be written.
func containerHost(t *testing.T) *fakeHost {
	t.Helper()
	h := newFakeHost()
	h.files["/proc/fs/nfsd"] = ""
	h.bin = t.TempDir()
	for _, tool := range []string{"sh", "mount", "exportfs", "rpc.nfsd", "rpc.mountd"} {
		if err := os.WriteFile(filepath.Join(h.bin, tool), []byte("#!stub "+tool+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func TestContainerServerOwnImage(t *testing.T) {
	ctx := context.Background()
	h := containerHost(t)
	rt := container.NewFake(time.Now)
	cfg := ContainerConfig{Spec: container.NFSServerSpec{ExportDir: "/run/nfslab/export/r1", RunID: "r1"}}
	s, err := NewContainer(cfg, rt, h)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := s.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ep.Source() != "127.0.0.1:/" || ep.Port != 2049 || s.Kind() != KindContainer {
		t.Fatalf("endpoint %+v (%s)", ep, ep.Source())
	}
	spec, err := rt.SpecOf("nfslab-nfs-server")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(spec.Image, "localhost/nfslab/nfs-server:") || len(spec.Image) != len("localhost/nfslab/nfs-server:")+16 {
		t.Errorf("image %q is not nfslab's own, tagged by content", spec.Image)
	}
	if !spec.Privileged || !slices.Equal(spec.Command, []string{h.bin + "/sh", "/usr/local/bin/nfs-server"}) ||
		len(spec.Mounts) != 1 || spec.Mounts[0] != (container.Mount{Source: "/run/nfslab/export/r1", Target: "/mnt/data"}) ||
		len(spec.Ports) != 1 || spec.Ports[0] != (container.Port{HostIP: "127.0.0.1", HostPort: 2049, ContainerPort: 2049}) ||
		spec.Labels[container.LabelOwner] != container.OwnerValue || spec.Labels[container.LabelRole] != container.RoleNFSServer ||
		spec.Env["NFS_SERVER_ALLOWED_CLIENTS"] != "10.88.0.0/12" {
		t.Errorf("container spec is not the workshop's: %+v", spec)
	}
	for _, want := range []string{"modprobe nfsd", "(chmod 777 /run/nfslab/export/r1)"} {
		if !slices.Contains(h.runs, want) {
			t.Errorf("no %q in %q", want, h.runs)
		}
	}
	if !slices.Equal(h.dials, []string{"127.0.0.1:2049"}) {
		t.Errorf("dials %q", h.dials)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if l, _ := container.ListOwned(ctx, rt, ""); len(l) != 0 {
		t.Fatalf("containers left: %+v", l)
	}
	// The same host files: the image is imported once.
	s2, _ := NewContainer(cfg, rt, h)
	if _, err := s2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	imports := 0
	for _, c := range rt.Calls {
		if strings.HasPrefix(c, "import ") {
			imports++
		}
	}
	if imports != 1 {
		t.Errorf("%d imports for unchanged files, want 1: %q", imports, rt.Calls)
	}
	// A changed tool (a package upgrade) is a new image.
	if err := os.WriteFile(filepath.Join(h.bin, "rpc.nfsd"), []byte("#!stub rpc.nfsd 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = s2.Stop(ctx)
	s3, _ := NewContainer(cfg, rt, h)
	if _, err := s3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	spec3, _ := rt.SpecOf("nfslab-nfs-server")
	if spec3.Image == spec.Image {
		t.Error("a changed rpc.nfsd kept the image tag")
	}
}

func TestContainerServerRefusals(t *testing.T) {
	ctx := context.Background()
	cfg := ContainerConfig{Spec: container.NFSServerSpec{ExportDir: "/srv/x"}, ReadyTimeout: 2 * time.Second}
	if _, err := NewContainer(ContainerConfig{Spec: container.NFSServerSpec{ExportDir: "rel"}}, container.NewFake(time.Now), newFakeHost()); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"rel"`) {
		t.Errorf("relative export: %v", err)
	}
	if _, err := NewContainer(ContainerConfig{Spec: container.NFSServerSpec{ExportDir: "/x", HostIP: "localhost"}}, container.NewFake(time.Now), newFakeHost()); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"localhost"`) {
		t.Errorf("host name as published address: %v", err)
	}

	h := containerHost(t)
	delete(h.files, "/proc/fs/nfsd")
	s, _ := NewContainer(cfg, container.NewFake(time.Now), h)
	if _, err := s.Start(ctx); !errors.Is(err, ErrNoKernelNFSD) {
		t.Errorf("no nfsd: %v", err)
	}

	h = containerHost(t)
	h.files[LocalIOParam] = "Y\n"
	rt := container.NewFake(time.Now)
	s, _ = NewContainer(cfg, rt, h)
	if _, err := s.Start(ctx); !errors.Is(err, ErrLocalIO) {
		t.Errorf("LOCALIO on: %v", err)
	}
	if len(rt.Calls) != 0 {
		t.Errorf("refused, yet the runtime saw %q", rt.Calls)
	}

	h = containerHost(t)
	h.missing["rpc.mountd"] = true
	s, _ = NewContainer(cfg, container.NewFake(time.Now), h)
	if _, err := s.Start(ctx); err == nil || !strings.Contains(err.Error(), "rpc.mountd not found") {
		t.Errorf("missing rpc.mountd: %v", err)
	}

	rt = container.NewFake(time.Now)
	rt.PullErr = errors.New("no registry")
	s, _ = NewContainer(ContainerConfig{Spec: container.NFSServerSpec{ExportDir: "/srv/x", Image: "ghcr.io/normal-computing/nfs-server:latest"}}, rt, containerHost(t))
	if _, err := s.Start(ctx); err == nil || !strings.Contains(err.Error(), "ghcr.io/normal-computing/nfs-server:latest") {
		t.Errorf("user image that cannot be pulled: %v", err)
	}
}

// A server that exits (no nfsd in its namespace, a bad export) is reported
// with its exit code at once, not after the readiness timeout.
func TestContainerServerExitsBeforeReady(t *testing.T) {
	ctx := context.Background()
	h := containerHost(t)
	h.dialErr = syscall.ECONNREFUSED
	rt := container.NewFake(time.Now)
	clk := clock.NewFake(time.Now())
	s, _ := NewContainer(ContainerConfig{Spec: container.NFSServerSpec{ExportDir: "/srv/x"}, Clock: clk}, rt, h)
	done := make(chan error, 1)
	go func() { _, err := s.Start(ctx); done <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for len(h.dialsSnapshot()) < 2 && time.Now().Before(deadline) {
		clk.Advance(500 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	if err := rt.AddLog("nfslab-nfs-server", container.Stderr, "exportfs: /mnt/data does not support NFS export"); err != nil {
		t.Fatal(err)
	}
	if err := rt.Exit("nfslab-nfs-server", 1); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case err := <-done:
			if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "exited (code 1)") ||
				!strings.Contains(err.Error(), "exportfs: /mnt/data does not support NFS export") {
				t.Fatalf("err %v", err)
			}
			if l, _ := container.ListOwned(ctx, rt, ""); len(l) != 0 {
				t.Fatalf("a server that never answered was left: %+v", l)
			}
			return
		default:
			if time.Now().After(deadline) {
				t.Fatal("Start did not notice the exit")
			}
			clk.Advance(500 * time.Millisecond)
			time.Sleep(time.Millisecond)
		}
	}
}

// The container server's restart: stop the container, start it again and
// wait for the port; the faults that need a shell in the server are
// refused with the kind that has them.
func TestContainerServerStopFault(t *testing.T) {
	ctx := context.Background()
	h := containerHost(t)
	rt := container.NewFake(time.Now)
	s, _ := NewContainer(ContainerConfig{Spec: container.NFSServerSpec{ExportDir: "/srv/x"}}, rt, h)
	if err := s.Fault(ctx, FaultStop, true, FaultTarget{}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("fault before start: %v", err)
	}
	if _, err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, on := range []bool{true, true, false, false} {
		if err := s.Fault(ctx, FaultStop, on, FaultTarget{}); err != nil {
			t.Fatalf("stop fault %v: %v", on, err)
		}
		info, _ := rt.Inspect(ctx, s.ContainerID())
		if info.Running() == on {
			t.Fatalf("after stop fault %v the container is %s", on, info.State)
		}
	}
	if n := len(h.dialsSnapshot()); n != 3 {
		t.Errorf("%d readiness dials, want one per start (1 + 2)", n)
	}
	if err := s.Fault(ctx, FaultUnexport, true, FaultTarget{}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "netns") {
		t.Errorf("unexport on the container server: %v", err)
	}
}
