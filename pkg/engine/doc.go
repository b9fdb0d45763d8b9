// Package engine runs a scenario's timeline against backends it owns the
// interfaces of (network faults, storage, target, load, detectors): it
// starts each step at its offset or on its event, heals timed faults,
// samples fault counters each second, journals everything with planned and
// actual times, judges the expectations into a verdict, and always rolls
// back what it created, whatever way the run ends.
//
// One goroutine, the one that calls Run, owns the run's state: timers,
// event sources and the workers that call the backends only send it
// messages (loop.go). Each action is an apply/undo pair (actions.go), and
// the end of a step's For, heal steps and the rollback share one undo
// path (rollback.go).
//
// Time comes from an injected clock.Clock, so the timeline logic is tested
// with a fake clock and fake backends; adapters in pkg/backends wire the real
// packages in.
package engine
