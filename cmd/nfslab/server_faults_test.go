package main

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/nfslab/nfslab/pkg/client/clienttest"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// serverHost is a storageHost on which the netns server runs: its
// namespace files exist and knfsd answers with threads.
type serverHost struct {
	storageHost
	threads string
	writes  []string
	mu      sync.Mutex // a daemon's handler runs commands too
}

func (h *serverHost) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cmd := strings.Join(append([]string{name}, args...), " ")
	h.runs = append(h.runs, cmd)
	switch {
	case strings.HasSuffix(cmd, "cat /proc/fs/nfsd/threads"):
		return []byte(h.threads), nil
	case strings.HasSuffix(cmd, "rpc.nfsd 0"):
		h.threads = "0\n"
	case strings.Contains(cmd, "rpc.nfsd -N 3"):
		h.threads = "8\n"
	case strings.HasSuffix(cmd, "ls -1 /proc/fs/nfsd/clients"):
		return []byte("5\n"), nil
	case cmd == "ip netns pids nfslab-nfsd":
		return []byte("77\n"), nil
	}
	return nil, nil
}

func (h *serverHost) MkdirAll(p string) error  { h.files[p] = ""; return nil }
func (h *serverHost) RemoveAll(p string) error { delete(h.files, p); return nil }

// ran returns the commands run since the last call.
func (h *serverHost) ran() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.runs
	h.runs = nil
	return r
}

func (h *serverHost) WriteFile(p string, b []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.writes = append(h.writes, p+"="+string(b))
	return nil
}

func TestServerFaultCommands(t *testing.T) {
	h := &serverHost{storageHost: storageHost{files: map[string]string{
		"/run/netns/nfslab-nfsd": "", "/run/nfslab/nfsd/nfslab-nfsd/ns/mnt": ""}}, threads: "8\n"}
	ctx := withStorageDeps(context.Background(), storageDeps{host: h, resolver: storageResolver{}, probe: storageProbe{}})
	const ns = "nsenter --mount=/run/nfslab/nfsd/nfslab-nfsd/ns/mnt --net=/run/netns/nfslab-nfsd "
	for _, tc := range []struct {
		args []string
		runs []string
		out  string
	}{
		{[]string{"nfs-server", "restart", "--down", "10ms"}, []string{ns + "rpc.nfsd 0", ns + "cat /proc/fs/nfsd/threads",
			ns + "rpc.nfsd -N 3 -V 4 --no-udp -G 10 -L 15 -H 10.213.0.2 -p 2049 8", ns + "cat /proc/fs/nfsd/threads"}, "stop off after"},
		{[]string{"nfs-server", "unexport"}, []string{ns + "exportfs -i -o ro,sync,no_subtree_check,insecure,fsid=2050 10.213.0.1:/run/nfslab/nfsd/nfslab-nfsd/placeholder",
			ns + "exportfs -u 10.213.0.1:/run/nfslab/export/nfslab-nfsd"}, "nfslab nfs-server export --netns nfslab-nfsd"},
		{[]string{"nfs-server", "export"}, []string{ns + "exportfs -i -o rw,sync,no_subtree_check,no_root_squash,insecure,fsid=2049 10.213.0.1:/run/nfslab/export/nfslab-nfsd",
			ns + "exportfs -u 10.213.0.1:/run/nfslab/nfsd/nfslab-nfsd/placeholder"}, "exported"},
		{[]string{"nfs-server", "expire-clients"}, []string{ns + "ls -1 /proc/fs/nfsd/clients", "ip netns pids nfslab-nfsd"}, "expired client(s) 5"},
	} {
		h.runs = nil
		out, stderr, code := runStorageCLI(t, ctx, tc.args...)
		if code != 0 {
			t.Errorf("%s: exit %d: %s", tc.args, code, stderr)
		}
		if !reflect.DeepEqual(h.runs, tc.runs) {
			t.Errorf("%s ran:\n%s\nwant:\n%s", tc.args, strings.Join(h.runs, "\n"), strings.Join(tc.runs, "\n"))
		}
		if !strings.Contains(out, tc.out) {
			t.Errorf("%s: output %q, want %q", tc.args, out, tc.out)
		}
	}
	if want := []string{"/proc/77/root/proc/fs/nfsd/clients/5/ctl=expire\n"}; !reflect.DeepEqual(h.writes, want) {
		t.Errorf("writes %q, want %q", h.writes, want)
	}
	// fill refuses an export that is not size-bounded: exit 2, nothing run.
	h.runs = nil
	if _, stderr, code := runStorageCLI(t, ctx, "nfs-server", "fill"); code != 2 || !strings.Contains(stderr, "size-bounded") || len(h.runs) != 0 {
		t.Errorf("fill of a plain export: exit %d %q, ran %q", code, stderr, h.runs)
	}
	// No server: an error naming how to start it, nothing run.
	h.files = map[string]string{}
	h.runs = nil
	if _, stderr, code := runStorageCLI(t, ctx, "nfs-server", "restart"); code == 0 || !strings.Contains(stderr, "nfslab nfs-server start") || len(h.runs) != 0 {
		t.Errorf("restart without a server: exit %d %q, ran %q", code, stderr, h.runs)
	}
}

// TestServerFaultsThroughDaemon: with a daemon on --socket (the server
// machine's, forwarded over SSH) the nfs-server fault commands act there,
// and the daemon switches a fault with --for off itself; a socket the user
// names but nobody serves is an error, never a fault on this machine.
func TestServerFaultsThroughDaemon(t *testing.T) {
	h := &serverHost{storageHost: storageHost{files: map[string]string{
		"/run/netns/nfslab-nfsd": "", "/run/nfslab/nfsd/nfslab-nfsd/ns/mnt": ""}}, threads: "8\n"}
	o, _ := fakeHost(t)
	ctx := withStorageDeps(context.Background(), storageDeps{host: h, resolver: storageResolver{}, probe: storageProbe{}})
	ctx = withCleanupOptions(context.WithValue(ctx, daemonInjectorKey{}, netfault.Injector(clienttest.New(clock.Real{}))), o)
	sock := filepath.Join(t.TempDir(), "d.sock")
	stop := startDaemon(t, ctx, sock)
	defer stop()
	h.ran() // the daemon's start-up sweep
	const ns = "nsenter --mount=/run/nfslab/nfsd/nfslab-nfsd/ns/mnt --net=/run/netns/nfslab-nfsd "
	out, stderr, code := runStorageCLI(t, ctx, "nfs-server", "unexport", "--socket", sock, "--for", "20s")
	if code != 0 || !strings.Contains(out, "nfslab-nfsd: unexport on via daemon at "+sock) || !strings.Contains(out, "the daemon switches it off") {
		t.Fatalf("unexport via daemon: exit %d %q %q", code, out, stderr)
	}
	if r := h.ran(); len(r) != 2 || r[1] != ns+"exportfs -u 10.213.0.1:/run/nfslab/export/nfslab-nfsd" {
		t.Errorf("unexport via daemon ran %q", r)
	}
	out, _, code = runStorageCLI(t, ctx, "nfs-server", "export", "--socket", sock)
	if code != 0 || !strings.Contains(out, "unexport off via daemon") {
		t.Errorf("export via daemon: exit %d %q", code, out)
	}
	h.ran()
	// Bad input comes back from the daemon as exit 2, nothing run.
	if _, stderr, code := runStorageCLI(t, ctx, "nfs-server", "eio", "--socket", sock, "--path", "../x"); code != 2 || !strings.Contains(stderr, `"../x"`) {
		t.Errorf("eio with a bad path via daemon: exit %d %q", code, stderr)
	}
	if r := h.ran(); len(r) != 0 {
		t.Errorf("a bad request ran %q", r)
	}
	// A named socket nobody serves: an error, nothing run here.
	gone := filepath.Join(t.TempDir(), "gone.sock")
	if _, stderr, code := runStorageCLI(t, ctx, "nfs-server", "unexport", "--socket", gone); code == 0 || !strings.Contains(stderr, "no daemon answers at "+gone) {
		t.Errorf("unexport with no daemon on the named socket: exit %d %q", code, stderr)
	}
	if r := h.ran(); len(r) != 0 {
		t.Errorf("with no daemon on the named socket, ran here: %q", r)
	}
	if code := stop(); code != 0 {
		t.Errorf("daemon exit %d", code)
	}
}
