//go:build linux && nfsguest

// This file needs a kernel with the NFS client, knfsd and
// CONFIG_NFS_LOCALIO=y, which Debian's kernels (the lab VM's default
// included) lack: it runs in the lab VM booted with nfslab's LOCALIO
// kernel:
//
//	CGO_ENABLED=0 go test -tags "$TAGS nfsguest" -c -o /tmp/nfsserver.test ./pkg/nfsserver
//	nfslab vm run --kernel localio --smoke-only --test-binary /tmp/nfsserver.test=LocalIO

package nfsserver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/privtest"
	"github.com/nfslab/nfslab/internal/testnet"
	"github.com/nfslab/nfslab/pkg/mount"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// journalWriter appends 256 KiB chunks to a file on the mount and fsyncs
// each one, like the journal's flush, until stopped; it counts the bytes
// that fsync acknowledged and keeps the first error.
type journalWriter struct {
	synced atomic.Int64
	mu     sync.Mutex
	err    error
	stop   chan struct{}
	done   chan struct{}
}

func startWriter(t *testing.T, path string) *journalWriter {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	w := &journalWriter{stop: make(chan struct{}), done: make(chan struct{})}
	buf := []byte(strings.Repeat("nfslab journal record\n", 256*1024/22+1))[:256*1024]
	go func() {
		defer close(w.done)
		defer f.Close()
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			_, err := f.Write(buf)
			if err == nil {
				err = f.Sync()
			}
			if err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
			w.synced.Add(int64(len(buf)))
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return w
}

func (w *journalWriter) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Stop ends the writer; a write blocked in a cut-off soft mount returns
// after its timeouts, so the wait is bounded, not instant.
func (w *journalWriter) Stop(t *testing.T, bound time.Duration) {
	close(w.stop)
	select {
	case <-w.done:
	case <-time.After(bound):
		t.Errorf("journal writer still blocked %s after stop", bound)
	}
}

// localIOLab is a netns knfsd and a soft NFSv4.2 mount of it made from a
// client namespace, on one kernel.
type localIOLab struct {
	srv    *NetnsServer
	target string
	export string
	m      mount.Mounter
	client string
}

func startLocalIOLab(t *testing.T, allow bool) *localIOLab {
	t.Helper()
	s, target := startAndMount(t, NetnsConfig{AllowLocalIO: allow})
	return &localIOLab{srv: s, target: target, export: s.Config().ExportDir, m: mount.NewLinux(mount.LinuxOptions{}), client: s.Config().HostNetns}
}

func (l *localIOLab) sample(t *testing.T) LocalIOSample {
	t.Helper()
	s, err := SampleLocalIO(os.DirFS("/"), "proc/self/mountstats", l.target)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// exportSize is the journal's size in the export, as the server sees it.
func (l *localIOLab) exportSize() int64 {
	st, err := os.Stat(filepath.Join(l.export, "journal"))
	if err != nil {
		return 0
	}
	return st.Size()
}

func (l *localIOLab) drop(t *testing.T, m *netfault.Manager, original bool) netfault.Fault {
	t.Helper()
	f, err := m.Apply(context.Background(), netfault.Spec{Kind: netfault.KindDrop, Dst: l.srv.Config().ServerAddr().String(),
		Port: NFSPort, Proto: "tcp", Dir: netfault.DirOut, MatchOriginal: original, Netns: l.client, For: 5 * time.Minute}.WithDefaults())
	if err != nil {
		t.Fatalf("drop: %v", err)
	}
	for _, r := range f.Rules {
		t.Logf("  rule: %s", r)
	}
	return f
}

func packets(t *testing.T, m *netfault.Manager, netns, id string) uint64 {
	t.Helper()
	fs, err := m.List(context.Background(), netns)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.ID == id {
			return f.Packets
		}
	}
	t.Fatalf("fault %s not listed", id)
	return 0
}

func localIOKernel(t *testing.T) {
	t.Helper()
	if !kernelHasNFS() {
		privtest.Skip(t, "this kernel has no NFS client/server; the test runs in the lab VM (nfslab vm run --kernel localio)")
	}
	if _, err := os.Stat(LocalIOParam); err != nil {
		privtest.Skip(t, "this kernel has no NFS LOCALIO (no "+LocalIOParam+"); boot the lab VM with nfslab vm run --kernel localio")
	}
	privtest.Root(t)
	privtest.Tools(t, "ip", "iptables", "rpc.nfsd", "rpc.mountd", "exportfs", "nsenter", "unshare")
	old, _ := os.ReadFile(LocalIOParam)
	t.Cleanup(func() { _ = os.WriteFile(LocalIOParam, []byte(strings.TrimSpace(string(old))), 0o644) })
}

// TestLocalIOBypassesDropReal: with LOCALIO on, a client and nfslab's
// netns knfsd on one kernel, a drop of everything to the server's port
// (and then the same drop on the connection's original destination,
// --match-original) leaves the journal's fsynced writes going and the
// export's file growing; the drop counts metadata at most; the mount's
// READ/WRITE/COMMIT RPC counts stand still while the data changes, and
// nfslab says so (LocalIOBypass, netfault's localio finding).
func TestLocalIOBypassesDropReal(t *testing.T) {
	localIOKernel(t)
	if err := os.WriteFile(LocalIOParam, []byte("Y"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := startLocalIOLab(t, true)
	m, err := netfault.NewManager(netfault.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = m.HealAll(context.Background(), l.client) })
	w := startWriter(t, filepath.Join(l.target, "journal"))
	defer w.Stop(t, 2*time.Minute)
	time.Sleep(3 * time.Second)
	if w.synced.Load() == 0 || w.Err() != nil {
		t.Fatalf("no baseline writes: %d bytes, %v", w.synced.Load(), w.Err())
	}
	for _, original := range []bool{false, true} {
		before, size0, synced0 := l.sample(t), l.exportSize(), w.synced.Load()
		f := l.drop(t, m, original)
		time.Sleep(8 * time.Second)
		after, size1, synced1 := l.sample(t), l.exportSize(), w.synced.Load()
		pk := packets(t, m, l.client, f.ID)
		fnd, err := m.Diagnose(context.Background(), l.client, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Heal(context.Background(), l.client, f.ID); err != nil {
			t.Fatal(err)
		}
		bypassed, why := LocalIOBypass(before, after, size1-size0)
		t.Logf("drop (match-original %v) for 8s: %d packets counted; fsync acknowledged %d bytes, the export's file grew %d bytes; %s",
			original, pk, synced1-synced0, size1-size0, why)
		for _, x := range fnd {
			t.Logf("  finding %s: %s", x.Cause, x.Detail)
		}
		if err := w.Err(); err != nil {
			t.Fatalf("the journal's writes failed under the drop although LOCALIO is on: %v", err)
		}
		if synced1-synced0 < 1<<20 || size1-size0 < 1<<20 {
			t.Errorf("the journal's writes stalled under the drop (%d bytes fsynced, export +%d bytes): LOCALIO did not serve them", synced1-synced0, size1-size0)
		}
		if !bypassed {
			t.Errorf("nfslab does not see LOCALIO: %s", why)
		}
		// Metadata at most: every data byte crossing the veth would be
		// hundreds of 1448-byte segments per MiB.
		if maxPk := uint64((size1 - size0) / (64 << 10)); pk > maxPk {
			t.Errorf("the drop counted %d packets for %d bytes written: the data crossed the network", pk, size1-size0)
		}
		found := false
		for _, x := range fnd {
			found = found || x.Cause == netfault.CauseLocalIO
		}
		if !found {
			t.Errorf("Diagnose names no %s finding: %+v", netfault.CauseLocalIO, fnd)
		}
	}
}

// TestLocalIODisabledDropBitesReal: the same set-up with --disable-localio
// (LOCALIO turned off before the mount): WRITE RPCs count, the drop of the
// server's port counts packets and the journal's fsync fails on the soft
// mount.
func TestLocalIODisabledDropBitesReal(t *testing.T) {
	localIOKernel(t)
	if err := os.WriteFile(LocalIOParam, []byte("Y"), 0o644); err != nil {
		t.Fatal(err)
	}
	// nfslab's refusal first: LOCALIO on and neither allowed nor disabled.
	s, err := NewNetns(NetnsConfig{Name: testnet.RandomName("nfslt-lref"), StateDir: t.TempDir(), ExportDir: t.TempDir()}, NewHost())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(context.Background()); !errors.Is(err, ErrLocalIO) {
		t.Fatalf("Start with LOCALIO on = %v, want the refusal", err)
	}
	l := startLocalIOLab(t, false)
	if st, _ := LocalIO(NewHost()); st != LocalIODisabled {
		t.Fatalf("--disable-localio left LOCALIO %s", st)
	}
	m, err := netfault.NewManager(netfault.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = m.HealAll(context.Background(), l.client) })
	before, size0 := l.sample(t), l.exportSize()
	w := startWriter(t, filepath.Join(l.target, "journal"))
	time.Sleep(3 * time.Second)
	after, size1 := l.sample(t), l.exportSize()
	bypassed, why := LocalIOBypass(before, after, size1-size0)
	t.Logf("baseline: %s", why)
	if bypassed || after.Ops["WRITE"] == before.Ops["WRITE"] {
		t.Errorf("with LOCALIO off the writes must be WRITE RPCs: %s", why)
	}
	f := l.drop(t, m, false)
	start, synced0 := time.Now(), w.synced.Load()
	for w.Err() == nil && time.Since(start) < 3*time.Minute {
		time.Sleep(time.Second)
		if s := time.Since(start); s.Round(time.Second)%(15*time.Second) == 0 {
			t.Logf("  %s into the drop: %d packets, %d bytes fsynced since it began", s.Round(time.Second), packets(t, m, l.client, f.ID), w.synced.Load()-synced0)
		}
	}
	pk := packets(t, m, l.client, f.ID)
	t.Logf("drop: %d packets counted; %d bytes fsynced during it; the journal's fsync: %v after %s", pk, w.synced.Load()-synced0, w.Err(), time.Since(start).Round(time.Second))
	if err := m.Heal(context.Background(), l.client, f.ID); err != nil {
		t.Fatal(err)
	}
	w.Stop(t, 2*time.Minute)
	if w.Err() == nil {
		t.Errorf("the drop did not bite: no fsync error within 3m")
	}
	if pk == 0 {
		t.Errorf("the drop counted no packets")
	}
}
