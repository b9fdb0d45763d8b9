package publish

import (
	"fmt"
	"os"
	"strings"

	"github.com/nfslab/nfslab/internal/netnsdo"
)

// procSysctl reads and writes /proc/sys from a thread inside the namespace:
// /proc/sys/net resolves to the network namespace of the task that opens it.
type procSysctl struct{}

func sysctlPath(key string) string { return "/proc/sys/" + strings.ReplaceAll(key, ".", "/") }

func (procSysctl) Get(ns, key string) (string, error) {
	var v string
	err := netnsdo.Do(ns, func() error {
		b, err := os.ReadFile(sysctlPath(key))
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", key, err)
	}
	return v, nil
}

func (procSysctl) Set(ns, key, value string) error {
	err := netnsdo.Do(ns, func() error { return os.WriteFile(sysctlPath(key), []byte(value+"\n"), 0o644) })
	if err != nil {
		return fmt.Errorf("writing %s=%s: %w", key, value, err)
	}
	return nil
}
