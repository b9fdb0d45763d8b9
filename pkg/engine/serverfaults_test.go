package engine

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/nfsserver"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// serverStorage is a fake storage whose NFS server is nfslab's own.
type serverStorage struct {
	*fakeStorage
	h     *harness
	mu    sync.Mutex
	calls []string
}

func (s *serverStorage) ServerFault(_ context.Context, fault string, on bool, target nfsserver.FaultTarget) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := fmt.Sprintf("%s %s %v", s.h.clk.Now().Sub(t0), fault, on)
	if !target.IsZero() {
		c += fmt.Sprintf(" %s:%s", target.Path, target.Blocks)
	}
	s.calls = append(s.calls, c)
	return nil
}

const serverDoc = `metadata: {name: srv}
duration: 2m
storage: {kind: nfs, server: {kind: netns}}
target: {kind: probe}
timeline:
  - {id: down, at: 10s, for: 20s, action: server-restart}
  - {id: bounce, at: 40s, action: server-restart}
  - {id: forget, at: 50s, action: server-expire-clients}
  - {id: gone, at: 60s, action: server-unexport}
expectations:
  - {kind: recovery, by: appending, after: down, within: 1m}
`

// serverCalls runs doc against a storage that records its server-fault
// calls and returns the harness, the result and the calls.
func serverCalls(t *testing.T, doc string) (*harness, *Result, []string) {
	t.Helper()
	var ss *serverStorage
	h := start(t, doc, func(h *harness, _ *Options) {
		ss = &serverStorage{fakeStorage: h.storage, h: h}
		h.backing = ss
	})
	res := h.wait()
	if res.Err != nil {
		t.Fatalf("run: %v", res.Err)
	}
	ss.mu.Lock()
	got := append([]string(nil), ss.calls...)
	ss.mu.Unlock()
	return h, res, got
}

func TestServerFaultsApplyAndUndo(t *testing.T) {
	h, res, got := serverCalls(t, serverDoc)
	// down lasts its for; bounce starts knfsd at once; forget has no
	// undo; gone has no for, so the rollback exports again.
	want := []string{"10s stop true", "30s stop false", "40s stop true", "40s stop false", "50s expire-clients true", "1m0s unexport true"}
	if len(got) != len(want)+1 || !reflect.DeepEqual(got[:len(want)], want) || !strings.HasSuffix(got[len(want)], " unexport false") {
		t.Errorf("server fault calls:\n%s\nwant:\n%s\n+ unexport false at the rollback", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var applied, healed []string
	for _, r := range h.j.of(journal.TypeFaultApplied) {
		applied = append(applied, r.Fault.Kind)
	}
	for _, r := range h.j.of(journal.TypeFaultHealed) {
		healed = append(healed, r.Fault.Kind)
	}
	if w := []string{"server-restart", "server-unexport"}; !reflect.DeepEqual(applied, w) || !reflect.DeepEqual(healed, w) {
		t.Errorf("journal applied %v healed %v, want %v both (the windows the report shades)", applied, healed, w)
	}
	h.assertRolledBack(res)
}

const eioDoc = `metadata: {name: eio}
duration: 2m
storage: {kind: nfs, server: {kind: netns, export_size: 64MB, export_fs: ext4}}
target: {kind: probe}
timeline:
  - {id: bad-write, at: 10s, for: 20s, action: server-eio, eio: {path: journal-1.log, blocks: 8-}}
  - {id: bad-disk, at: 40s, action: server-eio, eio: {blocks: 0-1023}}
expectations:
  - {kind: recovery, by: appending, after: bad-write, within: 1m}
`

// server-eio passes its target on and switches off without one: after
// its for, and at the rollback for a step without for.
func TestServerEIOApplyAndUndo(t *testing.T) {
	h, res, got := serverCalls(t, eioDoc)
	want := []string{"10s eio true journal-1.log:8-", "30s eio false", "40s eio true :0-1023"}
	if len(got) != len(want)+1 || !reflect.DeepEqual(got[:len(want)], want) || !strings.HasSuffix(got[len(want)], " eio false") {
		t.Errorf("server fault calls:\n%s\nwant:\n%s\n+ eio false at the rollback", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var applied []string
	for _, r := range h.j.of(journal.TypeFaultApplied) {
		applied = append(applied, r.Fault.Description)
	}
	if w := []string{"NFS server eio on journal-1.log sectors 8-", "NFS server eio on device sectors 0-1023"}; !reflect.DeepEqual(applied, w) {
		t.Errorf("journal applied %q, want %q", applied, w)
	}
	h.assertRolledBack(res)
}

func TestServerFaultNeedsOwnServer(t *testing.T) {
	h := start(t, serverDoc, nil) // fakeStorage has no ServerFault
	res := h.wait()
	if res.Err == nil || !strings.Contains(res.Err.Error(), "server faults need nfslab's own NFS server") {
		t.Fatalf("err %v, want the unsupported server fault", res.Err)
	}
	h.assertRolledBack(res)
}

// A recovery's default baseline is the window before the first fault: a
// server fault counts as one (in the VM the baseline fell before the start
// of the run, with no samples, until it did).
func TestServerFaultIsFirstFault(t *testing.T) {
	sc, err := scenario.Decode([]byte(serverDoc))
	if err != nil {
		t.Fatal(err)
	}
	if got := firstFaultStep(sc); got != "down" {
		t.Errorf("first fault step %q, want down", got)
	}
}
