// Package netnsdo runs a function inside a named network namespace
// (/run/netns/NAME) on a locked OS thread, the one safe way to do so from a
// Go program: sockets made inside keep their namespace, and child processes
// started inside (iptables, ip) inherit it.
package netnsdo
