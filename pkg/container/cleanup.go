package container

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// CleanupOptions tune Cleanup.
type CleanupOptions struct {
	// RunID limits cleanup to one run; "" removes nfslab containers of
	// every run.
	RunID string
	// Role limits cleanup to containers of one role (e.g. RoleZeebe); ""
	// means every role.
	Role string
	// StopTimeout is how long a container gets between the stop signal and
	// SIGKILL; 0 means 5 s.
	StopTimeout time.Duration
	// DetachNetns removes the named network namespace nfslab attached for
	// each container (see AttachNetns). nil does nothing.
	DetachNetns func(containerName string) error
}

// Cleanup stops and removes every container carrying nfslab's owner label
// (and the run label, if set), newest first, with its anonymous volumes.
// "Not found" counts as done, so it is safe to run at start-up and after a
// crash. It returns the names it removed.
func Cleanup(ctx context.Context, rt Runtime, opts CleanupOptions) ([]string, error) {
	infos, err := ListOwned(ctx, rt, opts.RunID)
	if err != nil {
		return nil, fmt.Errorf("listing nfslab containers: %w", err)
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 5 * time.Second
	}
	// Reverse creation order: a broker created after its NFS server goes first.
	sort.SliceStable(infos, func(i, j int) bool { return infos[i].Created.After(infos[j].Created) })
	var removed []string
	var errs []error
	for _, in := range infos {
		if !Owned(in, opts.RunID, opts.Role) {
			continue
		}
		if err := removeOne(ctx, rt, in, opts); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, in.Name)
	}
	return removed, errors.Join(errs...)
}

// Owned reports whether in carries nfslab's owner label and, where given
// (not ""), run runID's and role's labels. ListOwned filters on the
// service side; callers check again with Owned, so that a runtime that
// ignored the filter cannot make a stranger's container nfslab's.
func Owned(in Info, runID, role string) bool {
	return in.Labels[LabelOwner] == OwnerValue && (runID == "" || in.Labels[LabelRun] == runID) &&
		(role == "" || in.Labels[LabelRole] == role)
}

func removeOne(ctx context.Context, rt Runtime, in Info, opts CleanupOptions) error {
	if opts.DetachNetns != nil {
		if err := opts.DetachNetns(in.Name); err != nil {
			return fmt.Errorf("detaching network namespace of %s: %w", in.Name, err)
		}
	}
	// A frozen container cannot act on the stop signal.
	if in.State == StatePaused {
		if err := rt.Unpause(ctx, in.ID); ignoreGone(err) != nil {
			return fmt.Errorf("unpausing %s before removal: %w", in.Name, err)
		}
	}
	if in.Running() {
		if err := rt.Stop(ctx, in.ID, opts.StopTimeout); ignoreGone(err) != nil && !errors.Is(err, ErrNotModified) {
			return fmt.Errorf("stopping %s: %w", in.Name, err)
		}
	}
	if err := rt.Remove(ctx, in.ID, RemoveOptions{Force: true, Volumes: true}); ignoreGone(err) != nil {
		return fmt.Errorf("removing %s: %w", in.Name, err)
	}
	return nil
}

// ignoreGone treats "not found" as done.
func ignoreGone(err error) error {
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
