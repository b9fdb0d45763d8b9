package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const ext = ".json"

// path returns the record file of name, refusing names that would leave
// dir: every name nfslab uses is an ID, never a path.
func path(dir, name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.HasSuffix(name, ".tmp") {
		return "", fmt.Errorf("state record name %q is not a plain name", name)
	}
	return filepath.Join(dir, name+ext), nil
}

// Write stores v as the record name in dir (created 0700 if missing): a
// temporary file renamed over the record, so that a reader, or the next
// process after a SIGKILL, sees the old record or the new one, never half.
//
// There is deliberately no fsync, for every user (pkg/netfault's faults,
// internal/proctrack's processes and mounts): a record
// describes kernel objects (rules, routes, mounts, processes) that do not
// survive a reboot either, so a record lost or left empty by a power cut
// has nothing left to describe (and readers skip a record they cannot
// decode). The rename alone is what a crash of any process needs. An fsync
// is free on tmpfs, /run on most systems, but costs 2-3 ms per record where
// /run is on disk (ext4 on the lab machine): measured, the daemon's apply
// went from 1.4x to 2.4x raw iptables.
func Write(dir, name string, v any) error {
	p, err := path(dir, name)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding state record %s: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+name+"-*.tmp")
	if err != nil {
		return fmt.Errorf("writing state record %s: %w", name, err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing state record %s: %w", name, err)
	}
	return nil
}

// Read decodes the record name in dir into v. A missing record is an error
// wrapping fs.ErrNotExist.
func Read(dir, name string, v any) error {
	p, err := path(dir, name)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("reading state record %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding state record %s: %w", name, err)
	}
	return nil
}

// List returns the names of the records in dir, sorted; a missing dir has
// none.
func List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing state records: %w", err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ext) {
			continue
		}
		out = append(out, strings.TrimSuffix(n, ext))
	}
	sort.Strings(out)
	return out, nil
}

// Remove deletes the record name in dir; a record already gone is done.
func Remove(dir, name string) error {
	p, err := path(dir, name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing state record %s: %w", name, err)
	}
	return nil
}
