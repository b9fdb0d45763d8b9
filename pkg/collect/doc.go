// Package collect bundles the state of a run for a post-mortem (seed 002's
// "download the state of the brokers"): the journal, the logs, the JVM's
// hs_err files, the data directory, and the machine's view of the fault
// (iptables-save, routes, NFS mount statistics) into one tarball.
package collect
