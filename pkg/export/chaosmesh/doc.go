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
// It is the only package besides cmd/nfslab that imports Chaos Mesh's API
// module (and through it k8s.io/apimachinery and controller-runtime).
package chaosmesh
