// Package testnet builds throw-away network namespaces for privileged tests:
// a "client" and a "server" namespace joined by a veth pair with IPv4 and
// IPv6 addresses, helpers to run code inside a namespace, listeners in the
// server namespace that count what arrives, and a dialer that reports the
// errno a connect ended with. Everything is removed in t.Cleanup. Nothing
// here touches the caller's own namespace.
package testnet
