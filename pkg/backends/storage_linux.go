package backends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/nfslab/nfslab/internal/proctrack"
	"github.com/nfslab/nfslab/pkg/engine"
	"github.com/nfslab/nfslab/pkg/faultfs"
	"github.com/nfslab/nfslab/pkg/scenario"
)

// LocalStorage is a plain directory: for targets whose faults are not
// storage faults (seed 001's network partitions).
type LocalStorage struct{ Dir string }

func (s LocalStorage) Setup(context.Context) (engine.StorageInfo, error) {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return engine.StorageInfo{}, fmt.Errorf("creating data directory: %w", err)
	}
	return engine.StorageInfo{DataDir: s.Dir, Detail: []string{"local directory " + s.Dir}}, nil
}
func (LocalStorage) SetFault(context.Context, string, scenario.FaultfsRule) error {
	return fmt.Errorf("faultfs rules need storage kind faultfs: %w", engine.ErrUnsupported)
}
func (LocalStorage) ClearFault(context.Context, string) error { return nil }
func (LocalStorage) DropCache(context.Context) error          { return engine.ErrUnsupported }
func (LocalStorage) Teardown(context.Context) error           { return nil }

// FaultfsStorage mounts pkg/faultfs over a backing directory; the target's
// data directory is the mount (or Subdir inside it).
//
// Mountpoint must lie under nfslab's faultfs root (Build puts it at
// ROOT/run-NAME), where heal looks for it after a crash; the mount is also
// recorded in Records with this process as its server, so heal knows when
// nobody serves it any more.
type FaultfsStorage struct {
	Backing, Mountpoint, Subdir string
	Logger                      *slog.Logger
	Records                     *proctrack.Store // nil: not recorded

	mu       sync.Mutex
	fs       *faultfs.FS
	unrecord func() error
	rules    map[string][]string // scenario rule id -> faultfs rule ids
	// order lists the installed rules, newest first: faultfs consults its
	// rules in order and the first that fires decides, so a newer fault
	// (the full drop) must come before an older one (the slowdown), as an
	// iptables rule inserted at the top of the chain does.
	order []faultfs.Rule
}

var _ engine.Storage = (*FaultfsStorage)(nil)

func (s *FaultfsStorage) Setup(ctx context.Context) (engine.StorageInfo, error) {
	for _, d := range []string{s.Backing, s.Mountpoint} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return engine.StorageInfo{}, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	// Recorded before mounting: a record without a mount is "not found"
	// for heal, a mount without a record would have no known server.
	abs, err := filepath.Abs(s.Mountpoint) // mountinfo, which heal reads, has absolute paths
	if err != nil {
		return engine.StorageInfo{}, fmt.Errorf("resolving mountpoint %s: %w", s.Mountpoint, err)
	}
	unrecord, err := s.Records.Put(proctrack.Record{Kind: proctrack.KindMount, Name: "faultfs", Path: abs})
	if err != nil {
		return engine.StorageInfo{}, err
	}
	fs, err := faultfs.Mount(s.Backing, s.Mountpoint, faultfs.Options{Name: "nfslab-faultfs", Logger: s.Logger})
	if err != nil {
		_ = unrecord()
		return engine.StorageInfo{}, fmt.Errorf("mounting faultfs at %s: %w", s.Mountpoint, err)
	}
	s.mu.Lock()
	s.fs, s.rules, s.unrecord = fs, map[string][]string{}, unrecord
	s.mu.Unlock()
	data := filepath.Join(s.Mountpoint, s.Subdir)
	if err := os.MkdirAll(data, 0o755); err != nil {
		return engine.StorageInfo{}, fmt.Errorf("creating data directory %s: %w", data, err)
	}
	return engine.StorageInfo{DataDir: data, Detail: []string{fmt.Sprintf("faultfs at %s over %s (FUSE, no kernel passthrough)", s.Mountpoint, s.Backing)}}, nil
}

func (s *FaultfsStorage) SetFault(_ context.Context, id string, r scenario.FaultfsRule) error {
	rules, err := r.Rules(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fs == nil {
		return errors.New("faultfs is not mounted")
	}
	// Newest first: take the older rules out, set the new ones, put the
	// older ones back behind them.
	older := s.order
	for _, fr := range older {
		if err := s.fs.Clear(fr.ID); err != nil && !errors.Is(err, faultfs.ErrNotFound) {
			return fmt.Errorf("reordering rule %s: %w", fr.ID, err)
		}
	}
	s.order = nil
	for _, fr := range append(rules, older...) {
		got, err := s.fs.Set(fr)
		if err != nil {
			return fmt.Errorf("setting rule %s: %w", fr.ID, err)
		}
		s.order = append(s.order, got)
	}
	for _, fr := range rules {
		s.rules[id] = append(s.rules[id], fr.ID)
	}
	return nil
}

func (s *FaultfsStorage) ClearFault(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fs == nil {
		return nil
	}
	var errs []error
	for _, rid := range s.rules[id] {
		if err := s.fs.Clear(rid); err != nil && !errors.Is(err, faultfs.ErrNotFound) {
			errs = append(errs, err)
		}
		for i, fr := range s.order {
			if fr.ID == rid {
				s.order = append(s.order[:i], s.order[i+1:]...)
				break
			}
		}
	}
	delete(s.rules, id)
	return errors.Join(errs...)
}

// DropCache evicts every file's pages under the mount, so a replay reads
// through FUSE and its rules.
func (s *FaultfsStorage) DropCache(context.Context) error {
	s.mu.Lock()
	fs := s.fs
	s.mu.Unlock()
	if fs == nil {
		return errors.New("faultfs is not mounted")
	}
	_, err := fs.DropCacheGlob("")
	return err
}

// Teardown clears every rule and unmounts.
func (s *FaultfsStorage) Teardown(ctx context.Context) error {
	s.mu.Lock()
	fs, unrecord := s.fs, s.unrecord
	s.fs, s.unrecord = nil, nil
	s.mu.Unlock()
	if fs == nil {
		return nil
	}
	fs.ClearAll()
	if err := fs.Unmount(ctx); err != nil {
		return fmt.Errorf("unmounting faultfs %s: %w", s.Mountpoint, err)
	}
	// The mountpoint directory is nfslab's (under its root); the data
	// stays in the backing directory.
	_ = os.Remove(s.Mountpoint)
	return unrecord()
}

// StatsText summarises faultfs rule hits, for notes.
func (s *FaultfsStorage) StatsText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fs == nil {
		return ""
	}
	var parts []string
	for _, st := range s.fs.Stats() {
		parts = append(parts, fmt.Sprintf("%+v", st))
	}
	return strings.Join(parts, "; ")
}
