//go:build !linux

package netnsdo

import "errors"

// Do runs fn when name is empty; network namespaces exist only on Linux.
func Do(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	return errors.New("network namespaces need Linux")
}
