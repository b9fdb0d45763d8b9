package engine

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/nfslab/nfslab/pkg/journal"
	"github.com/nfslab/nfslab/pkg/netfault"
)

// One undo path: the end of a step's For, a heal, faultfs-clear or
// unpause step, and the rollback all choose effects with undoJobs, run
// undo (a worker, or inline in the rollback) and record it with
// recordUndo.

// undoJob is one effect to undo.
type undoJob struct {
	e   *effect // the loop's; a worker must not touch it
	was effect  // the copy the worker reads
	out undoOutcome
}

// undoOutcome is what an undo found and did.
type undoOutcome struct {
	err      error
	listed   bool             // counters holds the rule's last List
	counters []netfault.Fault // of the fault's namespace
	at       time.Time
	findings []netfault.Finding // why a rule matched nothing
	diagErr  error
}

// undoJobs selects, on the loop, the live effects sel wants undone, in
// the order they were made.
func (r *run) undoJobs(sel func(*effect) bool) []undoJob {
	var jobs []undoJob
	for _, e := range r.data.effects {
		if !e.undone && sel(e) {
			jobs = append(jobs, undoJob{e: e, was: *e})
		}
	}
	return jobs
}

// undo runs the jobs' backend calls.
func (r *run) undo(ctx context.Context, jobs []undoJob) {
	for i := range jobs {
		j := &jobs[i]
		j.out = actions[j.was.action].undo(ctx, r, j.was)
	}
}

// recordUndo records, on the loop, what the jobs found and did.
func (r *run) recordUndo(jobs []undoJob) error {
	var errs []error
	for i := range jobs {
		errs = append(errs, r.recordOne(&jobs[i]))
	}
	return errors.Join(errs...)
}

func (r *run) recordOne(j *undoJob) error {
	e, o := j.e, j.out
	if o.listed {
		r.recordCounters(o.counters, o.at)
	}
	if o.diagErr != nil {
		r.note("warn", "diagnosing %s: %v", e.id, o.diagErr)
	}
	if i := stepIndex(r.sc, e.step); i >= 0 {
		r.data.steps[i].findings = append(r.data.steps[i].findings, o.findings...)
	}
	for _, x := range o.findings {
		r.note("warn", "%s matched no traffic: %s: %s", e.step, x.Cause, x.Detail)
	}
	if o.err != nil {
		return o.err
	}
	e.undone = true
	if a := actions[e.action]; a.undone != nil {
		a.undone(r, e, o)
	}
	return nil
}

// rollback undoes everything the run left, newest first, runs the
// scenario's rollbacks, and stops the load, the target and the storage.
// It runs every part even when one fails, and returns what it removed.
func (r *run) rollback(ctx context.Context) []string {
	var done []string
	warn := func(what string, err error) {
		if err != nil {
			r.note("rollback", "%s: %v", what, err)
			r.write(journal.Record{Type: journal.TypeNote, Note: "rollback: " + what + ": " + err.Error()})
		}
	}
	jobs := r.undoJobs(func(*effect) bool { return true })
	slices.Reverse(jobs)
	for i := range jobs {
		j := jobs[i : i+1]
		r.undo(ctx, j)
		err := r.recordUndo(j)
		a, name := actions[j[0].e.action], cmp.Or(j[0].e.id, "target")
		warn(a.undoing+" "+name, err)
		if err == nil {
			done = append(done, a.gone+" "+name)
		}
	}
	for i := range r.sc.Rollbacks {
		st := &r.sc.Rollbacks[i]
		w := r.prepare(st)
		w.do(ctx, r)
		err := r.record(w)
		warn("rollback "+st.Action, err)
		if err == nil {
			done = append(done, "rollback "+st.Action)
		}
	}
	if r.b.Load != nil {
		warn("stopping load", r.b.Load.Stop(ctx))
	}
	if err := r.b.Target.Close(ctx); err != nil {
		warn("stopping target", err)
	} else {
		done = append(done, "target stopped")
	}
	if err := r.b.Storage.Teardown(ctx); err != nil {
		warn("tearing down storage", err)
	} else {
		done = append(done, "storage torn down")
	}
	r.note("rollback", "rolled back: %s", strings.Join(done, ", "))
	return done
}
