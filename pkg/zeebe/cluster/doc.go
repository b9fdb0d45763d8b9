// Package cluster runs Zeebe brokers in podman: one broker for `nfslab
// zeebe up`, or a cluster as the scenario engine's target (Target) with
// its load (Load) against the gateway.
//
// Every broker starts through StartBroker, so the image policy
// (container.EnsureImage: pull once when missing, bounded, or never) and
// the container's labels are the same for the CLI and the engine; every
// broker is removed through RemoveBroker or RemoveAll (container.Cleanup:
// only containers with nfslab's labels). A single broker uses host
// networking; a cluster uses podman's bridge so that each broker has its
// own network namespace, which $broker:N, $leader:P and `in:` faults need.
package cluster
