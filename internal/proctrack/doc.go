// Package proctrack makes the processes nfslab starts die with it, and
// records them (and the mounts a process serves) so that `nfslab heal
// --all` can end what a SIGKILLed nfslab left behind.
//
// A process is identified by its PID and its start time (field 22 of
// /proc/PID/stat, clock ticks since boot), so a record whose PID was
// reused by another process never leads to a kill (End here, Signal for
// pkg/netfault's reapers). Records are internal/statefile records in one directory,
// one per object, removed by their creator when the object is gone.
//
// Start runs a child with a parent-death signal (SIGKILL) in its own
// process group and records it; Store.End is the sweep. The kernel side
// (reading /proc, sending signals) sits behind Procs so the sweep's logic
// is tested with a fake.
package proctrack
