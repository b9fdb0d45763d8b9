package podman

import (
	"testing"

	"github.com/nfslab/nfslab/internal/proctrack"
)

// heal starts a podman service of its own only when a command recorded
// one: then containers may be left that no service answers for.
func TestServiceRecorded(t *testing.T) {
	if ServiceRecorded(nil) {
		t.Error("no store, yet a service is recorded")
	}
	s := proctrack.NewStore(t.TempDir())
	if _, err := s.Put(proctrack.Record{Kind: proctrack.KindProcess, Name: "probe", Proc: proctrack.Ident{PID: 1, Start: 1}}); err != nil {
		t.Fatal(err)
	}
	if ServiceRecorded(s) {
		t.Error("a probe record counted as a podman service")
	}
	remove, err := s.Put(proctrack.Record{Kind: proctrack.KindProcess, Name: serviceRecord, Proc: proctrack.Ident{PID: 2, Start: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if !ServiceRecorded(s) {
		t.Error("the recorded podman service was not found")
	}
	if err := remove(); err != nil || ServiceRecorded(s) {
		t.Errorf("after removing the record: %v, still recorded %v", err, ServiceRecorded(s))
	}
}
