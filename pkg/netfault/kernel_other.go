//go:build !linux

package netfault

import (
	"errors"
	"time"
)

var errUnsupported = errors.New("network faults need Linux")

func readNetFile(string, string) ([]byte, error) { return nil, errUnsupported }

func newRouteHandle(string) (RouteHandle, error) { return nil, errUnsupported }

func routeGone(error) bool { return false }

func dumpInterrupted(error) bool { return false }

func netnsID(string) (string, error) { return "", errUnsupported }

func newShapeHandle(string) (ShapeHandle, error) { return nil, errUnsupported }

func linkGone(error) bool { return false }

var errNotSupported = errors.New("operation not supported")

func ticksToDuration(uint32) time.Duration { return 0 }

var errInvalid = errors.New("invalid argument")
