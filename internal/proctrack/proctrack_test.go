package proctrack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeProcs is a process table: pid -> start time. Kill of a known pid
// (or its group) removes it, as SIGKILL does; of an unknown one fails with
// ESRCH, as the kernel does.
type fakeProcs struct {
	start  map[int]uint64
	killed []int
}

func (f *fakeProcs) StartTime(pid int) (uint64, error) {
	st, ok := f.start[pid]
	if !ok {
		return 0, fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	return st, nil
}

func (f *fakeProcs) Kill(pid int, _ syscall.Signal) error {
	f.killed = append(f.killed, pid)
	if pid < 0 {
		pid = -pid
	}
	if _, ok := f.start[pid]; !ok {
		return syscall.ESRCH
	}
	delete(f.start, pid)
	return nil
}

func newFake(t *testing.T, procs map[int]uint64) (*Store, *fakeProcs) {
	fp := &fakeProcs{start: procs}
	return &Store{Dir: t.TempDir(), Procs: fp}, fp
}

func put(t *testing.T, s *Store, r Record) {
	t.Helper()
	if _, err := s.Put(r); err != nil {
		t.Fatal(err)
	}
}

func TestParseStartTime(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	line := "4242 (java (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 19 0 987654 123 4 18446744073709551615\n"
	got, err := ParseStartTime([]byte(line))
	if err != nil || got != 987654 {
		t.Fatalf("ParseStartTime = %d, %v; want 987654", got, err)
	}
	if _, err := ParseStartTime([]byte("1 (x) S 1")); err == nil {
		t.Fatal("a short stat line parsed")
	}
	if ppid, err := ParseParent([]byte(line)); err != nil || ppid != 1 {
		t.Fatalf("ParseParent = %d, %v; want 1", ppid, err)
	}
	if _, err := ParseParent([]byte("1 (x) S")); err == nil {
		t.Fatal("a stat line without a parent parsed")
	}
	self, err := Of(Linux{}, os.Getpid())
	if err != nil || self.Start == 0 {
		t.Fatalf("own identity %v, %v", self, err)
	}
	if _, err := Of(Linux{Proc: t.TempDir()}, 1); err == nil || !strings.Contains(err.Error(), ErrGone.Error()) {
		t.Fatalf("missing /proc entry: err %v, want ErrGone", err)
	}
}

func TestEndKillsOnlyMatchingStartTime(t *testing.T) {
	owner := Ident{PID: 10, Start: 1}
	s, fp := newFake(t, map[int]uint64{
		100: 500, // the recorded child, still running
		200: 999, // PID 200 reused by a stranger (recorded start 600)
	})
	put(t, s, Record{Kind: KindProcess, Name: "probe", Owner: owner, Proc: Ident{PID: 100, Start: 500}})
	put(t, s, Record{Kind: KindProcess, Name: "probe", Owner: owner, Proc: Ident{PID: 200, Start: 600}})
	put(t, s, Record{Kind: KindProcess, Name: "gone", Owner: owner, Proc: Ident{PID: 300, Start: 700}})
	put(t, s, Record{Kind: KindMount, Name: "faultfs", Owner: owner, Path: "/x"})

	ended, kept, err := s.End(context.Background(), false, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ended) != 1 || ended[0] != "probe pid 100" || len(kept) != 0 {
		t.Fatalf("ended %v kept %v, want [probe pid 100] []", ended, kept)
	}
	for _, k := range fp.killed {
		if k == 200 || k == -200 || k == 300 || k == -300 {
			t.Fatalf("signalled %d: a reused or gone PID must never be signalled (kills %v)", k, fp.killed)
		}
	}
	if _, ok := fp.start[200]; !ok {
		t.Fatal("the stranger with the reused PID is gone")
	}
	es, _ := s.List()
	if len(es) != 1 || es[0].Kind != KindMount {
		t.Fatalf("records left %+v, want only the mount record (End ends processes)", es)
	}
	// A second sweep finds nothing: "not found" is done.
	if ended, _, err := s.End(context.Background(), false, time.Second); err != nil || len(ended) != 0 {
		t.Fatalf("second End: %v, %v", ended, err)
	}
}

func TestEndKeepsChildrenOfALiveOwner(t *testing.T) {
	s, fp := newFake(t, map[int]uint64{10: 1, 100: 500, 101: 501})
	put(t, s, Record{Kind: KindProcess, Name: "probe", Owner: Ident{PID: 10, Start: 1}, Proc: Ident{PID: 100, Start: 500}})
	// Owner 11 is dead: its child is a leftover.
	put(t, s, Record{Kind: KindProcess, Name: "probe", Owner: Ident{PID: 11, Start: 2}, Proc: Ident{PID: 101, Start: 501}})
	ended, kept, err := s.End(context.Background(), true, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ended) != 1 || ended[0] != "probe pid 101" || len(kept) != 1 || !strings.Contains(kept[0], "pid 100") {
		t.Fatalf("ended %v kept %v", ended, kept)
	}
	if _, ok := fp.start[100]; !ok {
		t.Fatal("the live owner's child was killed")
	}
}

// stuckProcs never lets a process die.
type stuckProcs struct{ fakeProcs }

func (f *stuckProcs) Kill(pid int, _ syscall.Signal) error { return nil }

func TestEndReportsAProcessThatWillNotDie(t *testing.T) {
	fp := &stuckProcs{fakeProcs{start: map[int]uint64{100: 5}}}
	s := &Store{Dir: t.TempDir(), Procs: fp}
	put(t, s, Record{Kind: KindProcess, Name: "probe", Owner: Ident{PID: 9, Start: 9}, Proc: Ident{PID: 100, Start: 5}})
	_, _, err := s.End(context.Background(), false, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "still runs") {
		t.Fatalf("err %v, want a process that still runs", err)
	}
	if es, _ := s.List(); len(es) != 1 {
		t.Fatal("the record of a process that still runs was removed")
	}
}

func TestPutIsAtomicAndListSkipsPartialFiles(t *testing.T) {
	s, _ := newFake(t, map[int]uint64{os.Getpid(): 42})
	rm, err := s.Put(Record{Kind: KindMount, Name: "faultfs", Path: "/run/nfslab/faultfs/r"})
	if err != nil {
		t.Fatal(err)
	}
	// A temporary file left by a crash mid-write is not a record.
	os.WriteFile(filepath.Join(s.Dir, ".tmp-x.json-123"), []byte("{\"kind\":"), 0o644)
	os.WriteFile(filepath.Join(s.Dir, "broken.json"), []byte("{\"kind\":"), 0o644)
	es, err := s.List()
	if err != nil || len(es) != 1 || es[0].Owner != (Ident{PID: os.Getpid(), Start: 42}) {
		t.Fatalf("List = %+v, %v", es, err)
	}
	if err := rm(); err != nil {
		t.Fatal(err)
	}
	if err := rm(); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
}

// TestStartSetsDeathSignalAndRecords runs a real short child.
func TestStartSetsDeathSignalAndRecords(t *testing.T) {
	s := NewStore(t.TempDir())
	cmd := exec.Command("sleep", "30")
	release, err := Start(s, cmd, "sleep")
	if err != nil {
		t.Fatal(err)
	}
	if a := cmd.SysProcAttr; a.Pdeathsig != syscall.SIGKILL || !a.Setpgid {
		t.Fatalf("SysProcAttr %+v, want Pdeathsig SIGKILL and Setpgid", a)
	}
	es, _ := s.List()
	if len(es) != 1 || es[0].Proc.PID != cmd.Process.Pid || !Alive(Linux{}, es[0].Proc) {
		t.Fatalf("records %+v, want the running child %d", es, cmd.Process.Pid)
	}
	if pg, _ := syscall.Getpgid(cmd.Process.Pid); pg != cmd.Process.Pid {
		t.Fatalf("child's process group %d, want its own (%d)", pg, cmd.Process.Pid)
	}
	ended, _, err := s.End(context.Background(), false, 5*time.Second)
	if err != nil || len(ended) != 1 {
		t.Fatalf("End: %v %v", ended, err)
	}
	cmd.Wait()
	release()
	if es, _ := s.List(); len(es) != 0 {
		t.Fatalf("records after release: %+v", es)
	}
}

// TestLinuxZombieIsGone: a zombie with no thread left is gone (it waits
// only to be reaped); one whose leader exited while a thread still runs is
// not.
func TestLinuxZombieIsGone(t *testing.T) {
	proc := t.TempDir()
	mk := func(pid int, st string, tasks int) {
		d := filepath.Join(proc, fmt.Sprint(pid))
		os.MkdirAll(filepath.Join(d, "task"), 0o755)
		for i := range tasks {
			os.Mkdir(filepath.Join(d, "task", fmt.Sprint(pid+i)), 0o755)
		}
		line := fmt.Sprintf("%d (java) %s 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0\n", pid, st)
		os.WriteFile(filepath.Join(d, "stat"), []byte(line), 0o644)
	}
	mk(10, "Z", 1)
	mk(20, "Z", 3)
	mk(30, "S", 2)
	l := Linux{Proc: proc}
	if _, err := l.StartTime(10); err == nil {
		t.Error("a reapable zombie counts as running")
	}
	for _, pid := range []int{20, 30} {
		if st, err := l.StartTime(pid); err != nil || st != 777 {
			t.Errorf("pid %d: %d, %v; want 777 (it still has threads)", pid, st, err)
		}
	}
}

// Signal (pkg/netfault's reapers get SIGTERM through it) signals only the
// process recorded: never a reused PID, a gone one, init or a group.
func TestSignalOnlySameStartTime(t *testing.T) {
	fp := &fakeProcs{start: map[int]uint64{0: 1, 1: 1, 100: 500, 200: 999}}
	for _, id := range []Ident{{PID: 200, Start: 600}, {PID: 300, Start: 1}, {PID: 1, Start: 1}, {PID: 0, Start: 1}, {PID: -100, Start: 500}} {
		if err := Signal(fp, id, syscall.SIGTERM); err != nil {
			t.Fatalf("Signal(%v): %v", id, err)
		}
	}
	if len(fp.killed) != 0 {
		t.Fatalf("signalled %v: a reused or gone PID, init or a group", fp.killed)
	}
	if err := Signal(fp, Ident{PID: 100, Start: 500}, syscall.SIGTERM); err != nil || len(fp.killed) != 1 || fp.killed[0] != 100 {
		t.Fatalf("Signal of the recorded process: killed %v, %v", fp.killed, err)
	}
}

// TestSignalRealChild: a real child gets the signal asked for, and a
// record with another start time does not reach it.
func TestSignalRealChild(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	id, err := Of(Linux{}, cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := Signal(Linux{}, Ident{PID: id.PID, Start: id.Start + 1}, syscall.SIGTERM); err != nil || !Alive(Linux{}, id) {
		t.Fatalf("a record with another start time reached the child: %v", err)
	}
	if err := Signal(Linux{}, id, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("child ended with %v, want SIGTERM", err)
	}
}

// Two Stores on one directory (two packages of one process, same owner)
// never write over each other's records.
func TestStoresShareADir(t *testing.T) {
	dir := t.TempDir()
	fp := &fakeProcs{start: map[int]uint64{os.Getpid(): 42}}
	for _, s := range []*Store{{Dir: dir, Procs: fp}, {Dir: dir, Procs: fp}} {
		put(t, s, Record{Kind: KindMount, Name: "faultfs", Path: "/m"})
	}
	if es, err := NewStore(dir).List(); err != nil || len(es) != 2 {
		t.Fatalf("List = %+v, %v; want both records", es, err)
	}
}

// TestMountScopeLeft: what a process left is at or below its roots, not
// there before it started, once each, deepest first.
func TestMountScopeLeft(t *testing.T) {
	m := MountScope{Roots: []string{"/var/lib/containers/storage", "/run/containers/storage"},
		Before: []string{"/var/lib/containers/storage/overlay-old"}}
	got := m.Left([]string{"/", "/var/lib/containers/storage/overlay", "/var/lib/containers/storage-other",
		"/var/lib/containers/storage/overlay-old", "/var/lib/containers/storage/overlay/abc/merged",
		"/run/containers/storage/overlay-containers/x/userdata/shm", "/var/lib/containers/storage/overlay"})
	want := []string{"/var/lib/containers/storage/overlay/abc/merged", "/var/lib/containers/storage/overlay",
		"/run/containers/storage/overlay-containers/x/userdata/shm"}
	if !slices.Equal(got, want) {
		t.Errorf("Left = %q\nwant %q", got, want)
	}
}
