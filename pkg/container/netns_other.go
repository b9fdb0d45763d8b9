//go:build !linux

package container

import (
	"context"
	"errors"
)

var errNoNetns = errors.New("network namespaces need Linux")

// AttachNetns needs Linux.
func AttachNetns(context.Context, Runtime, string) (string, error) { return "", errNoNetns }

// DetachNetns has nothing to do without Linux.
func DetachNetns(string) error { return nil }

// DetachAllNetns has nothing to do without Linux.
func DetachAllNetns() ([]string, error) { return nil, nil }

// DetachAllNetnsIn has nothing to do without Linux.
func DetachAllNetnsIn(string) ([]string, error) { return nil, nil }
