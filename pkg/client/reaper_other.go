//go:build !linux

package client

import (
	"errors"
	"time"
)

// SpawnReaper is Linux-only.
func SpawnReaper(id, netns string, created, at time.Time) (int, error) {
	return 0, errors.New("reaper processes need Linux")
}
