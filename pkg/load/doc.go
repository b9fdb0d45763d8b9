// Package load drives a Zeebe cluster the way the June 2025 NFS workshop did
// with zbctl: deploy a one-task process, create instances at a steady rate
// (one per 5 s by default, up to hundreds per second), and run workers that
// complete each job with {"result":"Pong"}. Every sample interval (1 s) it
// reports what happened as a journal.LoadSample: instances created, jobs
// completed, failed calls by gRPC code, create-instance latency percentiles
// and creations per partition (key >> 51, seed 001's steady-state check).
//
// The rate is open-loop: a token bucket on the injected clock decides when
// to create, independent of how fast the gateway answers, so a hung broker
// shows up as errors and latency rather than as a silently slower schedule.
// When MaxInFlight creations are already pending, a due creation is counted
// as skipped instead of queued.
package load
