//go:build !linux

package client

import (
	"errors"
	"time"
)

// ExpireCommand is the hidden subcommand a reaper runs.
const ExpireCommand = "expire"

// SpawnReaper is Linux-only.
func SpawnReaper(id, netns string, at time.Time) (int, error) {
	return 0, errors.New("reaper processes need Linux")
}
