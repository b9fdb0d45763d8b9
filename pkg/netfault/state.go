package netfault

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/internal/statefile"
)

// stateRecord is the metadata of one fault kept in StateDir. The kernel
// objects are the truth; the record only adds what they cannot carry.
type stateRecord struct {
	ID      string    `json:"id"`
	Spec    Spec      `json:"spec"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Reaper is the process that expires a fault the kernel cannot
	// (a route of the direct path); whatever removes the fault ends it.
	// Its PID and start time are kept as {"pid":…,"start":…}.
	Reaper *proctrack.Ident `json:"reaper,omitempty"`
	// Shape is where a delay or limit fault's class is and what nfslab's
	// root qdisc replaced (restored on heal, also after a crash).
	Shape *shapeRecord `json:"shape,omitempty"`
}

// stateDir is the directory of the records of netns's faults. It is named
// for the namespace's identity (the nsfs device and inode), not for the
// name the caller used: "" in the host and "" inside `unshare -n` are
// different namespaces and must not see each other's records.
func (m *Manager) stateDir(netns string) (string, error) {
	id, err := m.opts.NetnsID(netns)
	if err != nil {
		return "", fmt.Errorf("identifying network namespace %q: %w", netns, err)
	}
	return filepath.Join(m.opts.StateDir, id), nil
}

func (m *Manager) writeState(rec stateRecord) error {
	dir, err := m.stateDir(rec.Spec.Netns)
	if err != nil {
		return err
	}
	return statefile.Write(dir, rec.ID, rec)
}

// removeState drops a fault's record and ends its reaper unless that is
// this very process (a reaper healing its own fault). The record is read
// again here, after the kernel objects are gone, so that a reaper that
// recorded itself while they were being removed is not missed.
func (m *Manager) removeState(netns, id string) error {
	dir, err := m.stateDir(netns)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // the namespace is gone, and with it anything to heal
		}
		return err
	}
	if !isFaultID(id) {
		return nil // not a record nfslab wrote (e.g. "route-10.0.0.0/8")
	}
	var rec stateRecord
	if err := statefile.Read(dir, id, &rec); err == nil && rec.Reaper != nil && rec.Reaper.PID != os.Getpid() {
		// SIGTERM: the reaper cancels its wait and exits; a PID that
		// now belongs to another process is never signalled.
		if err := proctrack.Signal(m.opts.Processes, *rec.Reaper, syscall.SIGTERM); err != nil {
			m.log.Warn("ending the reaper of a healed fault", "id", id, "pid", rec.Reaper.PID, "err", err)
		}
	}
	if err := statefile.Remove(dir, id); err != nil {
		return fmt.Errorf("removing state of %s: %w", id, err)
	}
	return nil
}

// readState reads one fault's record.
func (m *Manager) readState(netns, id string) (stateRecord, bool) {
	dir, err := m.stateDir(netns)
	if err != nil || !isFaultID(id) {
		return stateRecord{}, false
	}
	var rec stateRecord
	if err := statefile.Read(dir, id, &rec); err != nil || rec.ID != id {
		return stateRecord{}, false
	}
	return rec, true
}

// readStates returns the records for netns; unreadable files are logged
// and skipped so one bad file cannot block healing.
func (m *Manager) readStates(netns string) map[string]stateRecord {
	out := map[string]stateRecord{}
	dir, err := m.stateDir(netns)
	if err != nil {
		return out
	}
	names, err := statefile.List(dir)
	if err != nil {
		m.log.Warn("listing fault state", "dir", dir, "err", err)
	}
	for _, name := range names {
		var rec stateRecord
		if err := statefile.Read(dir, name, &rec); err != nil || rec.ID != name {
			m.log.Warn("decoding fault state", "file", name, "err", err)
			continue
		}
		out[rec.ID] = rec
	}
	return out
}
