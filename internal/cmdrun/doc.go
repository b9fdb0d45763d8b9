// Package cmdrun runs external tools the way nfslab must: an argument list
// (never a shell string), LC_ALL=C so that output can be parsed, a context
// for the deadline, and errors that carry the command line and its output.
package cmdrun
