// Package backends wires nfslab's real packages into the scenario engine's
// backend interfaces: network faults through pkg/client (daemon or
// direct), storage through pkg/faultfs (and NFS through pkg/mount and
// pkg/nfsserver), the JVM journal probe through pkg/probe, Zeebe brokers
// through pkg/zeebe/cluster, detectors through pkg/detect.
package backends
