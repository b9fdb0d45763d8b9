// Command nfslab is a local fault-injection lab for storage and network.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "nfslab:", err)
		os.Exit(exitCode(err))
	}
}

func run() error {
	return newRootCmd(os.Stdout, os.Stderr).Execute()
}

// errUsage marks bad input: exit status 2, and nothing was changed.
var errUsage = errors.New("usage")

type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }
func (e usageError) Is(t error) bool {
	return t == errUsage
}

// usage marks err as bad input.
func usage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// exitError carries a specific exit status (for example "an expectation
// failed", or the status of a probe that crashed).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}
