package netfault

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/nfslab/nfslab/internal/netnsdo"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNetns runs fn inside /run/netns/name ("" runs fn directly). Child
// processes started by fn (iptables) inherit the thread's namespace.
func inNetns(name string, fn func() error) error { return netnsdo.Do(name, fn) }

// readNetFile reads /proc/net/NAME as seen from netns.
func readNetFile(ns, name string) ([]byte, error) {
	var b []byte
	err := inNetns(ns, func() error {
		var err error
		b, err = os.ReadFile(filepath.Join("/proc/thread-self/net", name))
		return err
	})
	return b, err
}

// newRouteHandle opens a netlink handle in ns ("" = the caller's).
func newRouteHandle(ns string) (RouteHandle, error) {
	h, err := openHandle(ns)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return h, nil
}

// openHandle opens a rtnetlink handle in ns ("" = the caller's), like
// `ip -n NS …`: one socket bound to the namespace, no thread switching.
func openHandle(ns string) (*netlink.Handle, error) {
	if ns == "" {
		return netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", ns, err)
	}
	defer h.Close()
	return netlink.NewHandleAt(h, unix.NETLINK_ROUTE)
}

// dumpInterrupted reports whether a netlink dump must be retried because
// the table changed while it was read.
func dumpInterrupted(err error) bool { return errors.Is(err, netlink.ErrDumpInterrupted) }

// routeGone reports whether a route delete failed because it is gone.
func routeGone(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)
}

// newShapeHandle opens a netlink handle in ns for qdiscs, classes, filters
// and links; *netlink.Handle is a ShapeHandle.
func newShapeHandle(ns string) (ShapeHandle, error) {
	h, err := openHandle(ns)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return h, nil
}

// linkGone reports whether a tc or link operation failed because its
// object (device, qdisc, class, filter, or the qdisc kind) does not exist.
func linkGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ESRCH)
}

// errNotSupported is what the kernel answers for an operation a qdisc
// does not support.
var errNotSupported error = unix.EOPNOTSUPP

// errInvalid is the kernel's answer for a filter list or delete on a
// device without an ingress qdisc.
var errInvalid error = unix.EINVAL

// ticksToDuration converts netem's delay in psched ticks (as the kernel
// dumps it, and as netlink.NewNetem stores it) to a duration, rounded to
// the microsecond netem was given.
func ticksToDuration(t uint32) time.Duration {
	return time.Duration(math.Round(float64(t)/netlink.TickInUsec())) * time.Microsecond
}

// netnsID names a network namespace by the device and inode of its nsfs
// file: /run/netns/NAME, or this thread's own namespace for "". A name
// whose file is not a mounted namespace is an error wrapping
// fs.ErrNotExist.
func netnsID(name string) (string, error) {
	p := "/proc/thread-self/ns/net"
	if name != "" {
		p = filepath.Join("/run/netns", name)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(p, &sfs); err != nil {
		return "", &fs.PathError{Op: "statfs", Path: p, Err: err}
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return "", &fs.PathError{Op: "statfs", Path: p, Err: fmt.Errorf("not a mounted network namespace: %w", fs.ErrNotExist)}
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return "", &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	return fmt.Sprintf("net-%d-%d", st.Dev, st.Ino), nil
}
