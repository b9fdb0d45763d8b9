// Package chaosmesh writes an nfslab scenario as Chaos Mesh objects, so
// that an experiment found on one machine can be repeated on Kubernetes
// without rewriting it: a Workflow whose Serial, Parallel and Suspend
// templates follow the timeline, with NetworkChaos for the network faults,
// IOChaos for the faultfs rules and PodChaos for the target controls.
//
// The package is pure: Export takes a validated scenario.Scenario and
// Options (which pods the objects act on) and returns the Workflow and the
// list of what did not map. Nothing is dropped silently: every scenario
// item Chaos Mesh cannot express (expectations, detectors, ports, byte
// ranges, events it cannot observe, fields the exporter does not know) is
// an Unmapped entry, printed by the command and written as a comment block
// at the top of the YAML.
//
// The objects are written with a copy of the part of Chaos Mesh's API the
// exporter fills (wire.go): Chaos Mesh's own Go types pull client-go and
// controller-runtime into the binary (+34 MB). Only this package's tests
// import them, to decode every golden file strictly and run the admission
// webhook's validation on it.
package chaosmesh
