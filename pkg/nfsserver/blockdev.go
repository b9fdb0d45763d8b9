package nfsserver

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Export filesystems of a size-bounded export (NetnsConfig.ExportFS).
const (
	// ExportTmpfs is a tmpfs (the default): FaultFill works, FaultEIO not.
	ExportTmpfs = "tmpfs"
	// ExportExt4 is ext4 on a sparse image file under the state directory,
	// attached to a loop device and mapped through a device-mapper device
	// named DMPrefix+NAME+"-export" (linear over the loop device). FaultEIO
	// reloads that device's table to map chosen sectors to the `error`
	// target; FaultFill works too.
	ExportExt4 = "ext4"
)

// ExportFSes lists the export filesystems in documentation order.
var ExportFSes = []string{ExportTmpfs, ExportExt4}

// DMPrefix starts the name of every device-mapper device nfslab creates;
// cleanup removes the devices with this prefix only.
const DMPrefix = "nfslab-"

// dmName is the export's device-mapper device: nfslab-<name>-export, with
// the netns name's own "nfslab-" not repeated (nfslab-nfsd-export).
func (c NetnsConfig) dmName() string {
	return DMPrefix + strings.TrimPrefix(c.Name, DMPrefix) + "-export"
}

// dmDev is the device node Start creates (`dmsetup mknodes`); it is also
// the mount's source in /proc/self/mountinfo, which marks it as nfslab's.
func (c NetnsConfig) dmDev() string { return "/dev/mapper/" + c.dmName() }

// image is the sparse file behind the loop device.
func (c NetnsConfig) image() string { return filepath.Join(c.StateDir, "export.img") }

// eioTable is the file the device's table is loaded from.
func (c NetnsConfig) eioTable() string { return filepath.Join(c.StateDir, "export.table") }

// startBlockExport makes the ext4 export: image, loop device, linear dm
// device, filesystem, mount on ExportDir (in the caller's mount namespace,
// before the server's is made from it, as the tmpfs). Equivalent to:
//
//	modprobe -a loop dm_mod
//	truncate -s SIZE STATE/export.img
//	losetup --find --show STATE/export.img
//	dmsetup create --noudevsync nfslab-NAME-export --table "0 SECTORS linear /dev/loopN 0"
//	dmsetup mknodes nfslab-NAME-export
//	mkfs.ext4 -q -F -L nfslab-export -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/nfslab-NAME-export
//	mount -t ext4 /dev/mapper/nfslab-NAME-export EXPORT
//
// Stop undoes it in reverse order.
func (s *NetnsServer) startBlockExport(ctx context.Context) error {
	c := s.cfg
	var missing []string
	for _, t := range []string{"dmsetup", "losetup", "mkfs.ext4", "filefrag", "fallocate", "blockdev", "truncate"} {
		if _, err := s.host.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("an ext4 export needs %s (apt-get install dmsetup util-linux e2fsprogs coreutils)", strings.Join(missing, ", "))
	}
	// Modules, not an error when built in; dmsetup fails clearly without.
	_, _ = s.host.Run(ctx, "modprobe", "-a", "loop", "dm_mod")
	if _, err := s.host.Run(ctx, "truncate", "-s", strconv.FormatInt(c.ExportSize, 10), c.image()); err != nil {
		return fmt.Errorf("creating the export image %s: %w", c.image(), err)
	}
	out, err := s.host.Run(ctx, "losetup", "--find", "--show", c.image())
	if err != nil {
		return fmt.Errorf("attaching %s to a loop device: %w", c.image(), err)
	}
	loop := strings.TrimSpace(string(out))
	if !strings.HasPrefix(loop, "/dev/loop") {
		return fmt.Errorf("attaching %s to a loop device: losetup printed %q", c.image(), out)
	}
	sectors := c.ExportSize / 512
	if _, err := s.host.Run(ctx, "dmsetup", "create", "--noudevsync", c.dmName(), "--table", linearTable(loop, sectors)); err != nil {
		return fmt.Errorf("creating device-mapper device %s: %w", c.dmName(), err)
	}
	if _, err := s.host.Run(ctx, "dmsetup", "mknodes", c.dmName()); err != nil {
		return fmt.Errorf("creating the node %s: %w", c.dmDev(), err)
	}
	if _, err := s.host.Run(ctx, "mkfs.ext4", "-q", "-F", "-L", exportFSSource, "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", c.dmDev()); err != nil {
		return fmt.Errorf("making ext4 on %s: %w", c.dmDev(), err)
	}
	if _, err := s.host.Run(ctx, "mount", "-t", "ext4", c.dmDev(), c.ExportDir); err != nil {
		return fmt.Errorf("mounting %s on %s: %w", c.dmDev(), c.ExportDir, err)
	}
	return nil
}

func linearTable(dev string, sectors int64) string {
	return "0 " + strconv.FormatInt(sectors, 10) + " linear " + dev + " 0"
}

// stopBlockExport removes the dm device and detaches the image's loop
// devices; "not there" is done. The export must be unmounted first.
// Equivalent to: `dmsetup remove --noudevsync --retry nfslab-NAME-export; losetup -d
// $(losetup -j STATE/export.img)`.
func (s *NetnsServer) stopBlockExport(ctx context.Context) error {
	c := s.cfg
	if !s.host.Exists(c.image()) {
		return nil // the image comes first and goes last
	}
	var errs []error
	if err := removeDM(ctx, s.host, c.dmName()); err != nil {
		errs = append(errs, err)
	}
	loops, err := s.loopsOf(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, l := range loops {
		if _, err := s.host.Run(ctx, "losetup", "-d", l); err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("detaching %s: %w", l, err))
		}
	}
	return errors.Join(errs...)
}

// removeDM removes a device-mapper device; a missing one is done. Bounded,
// and without waiting for udev (see loadTable).
func removeDM(ctx context.Context, h Host, name string) error {
	ctx, cancel := context.WithTimeout(ctx, dmsetupTimeout)
	defer cancel()
	if _, err := h.Run(ctx, "dmsetup", "remove", "--noudevsync", "--retry", name); err != nil && !notFound(err) && !dmMissing(err) {
		return fmt.Errorf("removing device-mapper device %s: %w", name, err)
	}
	return nil
}

// dmMissing: dmsetup's words for a device that is not there.
func dmMissing(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "no such device or address") || strings.Contains(msg, "device does not exist")
}

// loopsOf lists the loop devices attached to the export image.
// Equivalent to: `losetup --list --noheadings --output NAME --associated IMAGE`.
func (s *NetnsServer) loopsOf(ctx context.Context) ([]string, error) {
	out, err := s.host.Run(ctx, "losetup", "--list", "--noheadings", "--output", "NAME", "--associated", s.cfg.image())
	if err != nil {
		if notFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing the loop devices of %s: %w", s.cfg.image(), err)
	}
	return strings.Fields(string(out)), nil
}

// RemoveBlockDevices removes what an ext4 export leaves after any crash,
// found by name and backing file only: device-mapper devices whose name
// starts with DMPrefix (`dmsetup ls`), then loop devices whose backing
// file lies below backingRoot (nfslab's state directory). It returns what
// it removed; none is not an error. A device that is still mounted stays
// and is reported.
func RemoveBlockDevices(ctx context.Context, h Host, backingRoot string) ([]string, error) {
	var removed []string
	var errs []error
	// Without the driver there is no device (and dmsetup fails).
	if _, err := h.LookPath("dmsetup"); err == nil && h.Exists("/sys/module/dm_mod") {
		out, err := h.Run(ctx, "dmsetup", "ls")
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("listing device-mapper devices: %w", err))
		case err == nil:
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				if len(f) == 0 || !strings.HasPrefix(f[0], DMPrefix) {
					continue
				}
				if err := removeDM(ctx, h, f[0]); err != nil {
					errs = append(errs, err)
					continue
				}
				removed = append(removed, "dm "+f[0])
			}
		}
	}
	if _, err := h.LookPath("losetup"); err == nil {
		out, err := h.Run(ctx, "losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE")
		if err != nil {
			errs = append(errs, fmt.Errorf("listing loop devices: %w", err))
		}
		root := path.Clean(backingRoot) + "/"
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || !strings.HasPrefix(path.Clean(f[1]), root) {
				continue
			}
			if _, err := h.Run(ctx, "losetup", "-d", f[0]); err != nil && !notFound(err) {
				errs = append(errs, fmt.Errorf("detaching %s (%s): %w", f[0], f[1], err))
				continue
			}
			removed = append(removed, "loop "+f[0]+" ("+f[1]+")")
		}
	}
	return removed, errors.Join(errs...)
}
