package netfault

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// stateRecord is the metadata of one fault kept in StateDir. The kernel
// objects are the truth; the record only adds what they cannot carry.
type stateRecord struct {
	ID      string    `json:"id"`
	Spec    Spec      `json:"spec"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

func nsDir(netns string) string {
	if netns == "" {
		return "host"
	}
	return "netns-" + netns
}

func (m *Manager) statePath(netns, id string) string {
	return filepath.Join(m.opts.StateDir, nsDir(netns), id+".json")
}

func (m *Manager) writeState(rec stateRecord) error {
	p := m.statePath(rec.Spec.Netns, rec.ID)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding state of %s: %w", rec.ID, err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing state of %s: %w", rec.ID, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("writing state of %s: %w", rec.ID, err)
	}
	return nil
}

func (m *Manager) removeState(netns, id string) error {
	err := os.Remove(m.statePath(netns, id))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing state of %s: %w", id, err)
	}
	return nil
}

// readState reads one fault's record.
func (m *Manager) readState(netns, id string) (stateRecord, bool) {
	b, err := os.ReadFile(m.statePath(netns, id))
	if err != nil {
		return stateRecord{}, false
	}
	var rec stateRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return stateRecord{}, false
	}
	return rec, true
}

// readStates returns the records for netns; unreadable files are logged
// and skipped so one bad file cannot block healing.
func (m *Manager) readStates(netns string) map[string]stateRecord {
	dir := filepath.Join(m.opts.StateDir, nsDir(netns))
	ents, err := os.ReadDir(dir)
	out := map[string]stateRecord{}
	if err != nil {
		return out
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			m.log.Warn("reading fault state", "file", name, "err", err)
			continue
		}
		var rec stateRecord
		if err := json.Unmarshal(b, &rec); err != nil || rec.ID == "" {
			m.log.Warn("decoding fault state", "file", name, "err", err)
			continue
		}
		out[rec.ID] = rec
	}
	return out
}
