// Package daemonapi holds the JSON bodies of the daemon's HTTP API that are
// not netfault's own types (netfault.Spec, Fault, Plan, Finding): events,
// health, heal-all and error replies. The daemon (pkg/daemon) and its
// client (pkg/client) both import it, so neither imports the other.
package daemonapi
