package nfsserver

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// LocalIOParam is the NFS client's LOCALIO switch (Linux >= 6.12, nfs
// module loaded).
const LocalIOParam = "/sys/module/nfs/parameters/localio_enabled"

// LocalIOFix is the exact command that turns LOCALIO off; it must run
// before the mount is made.
const LocalIOFix = "echo N > " + LocalIOParam

// LocalIOState is what the kernel says about LOCALIO.
type LocalIOState string

const (
	LocalIOAbsent   LocalIOState = "absent"   // no parameter: kernel < 6.12 or nfs not loaded
	LocalIOEnabled  LocalIOState = "enabled"  // Y: a local client bypasses the network
	LocalIODisabled LocalIOState = "disabled" // N
)

// LocalIO reads the LOCALIO parameter.
func LocalIO(h Host) (LocalIOState, error) {
	b, err := h.ReadFile(LocalIOParam)
	if errors.Is(err, fs.ErrNotExist) {
		return LocalIOAbsent, nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", LocalIOParam, err)
	}
	switch strings.TrimSpace(string(b)) {
	case "Y", "y", "1":
		return LocalIOEnabled, nil
	case "N", "n", "0":
		return LocalIODisabled, nil
	default:
		return "", fmt.Errorf("reading %s: unexpected value %q", LocalIOParam, strings.TrimSpace(string(b)))
	}
}

// RequireNoLocalIO refuses (ErrLocalIO, with the fix) while LOCALIO is on,
// because then packets to a local knfsd never cross the faults. With
// apply, it turns LOCALIO off instead and checks that the kernel took it.
func RequireNoLocalIO(h Host, apply bool) error {
	st, err := LocalIO(h)
	if err != nil || st != LocalIOEnabled {
		return err
	}
	if !apply {
		return fmt.Errorf("%w: a client mounting a knfsd on this host would bypass the network, so no network fault would bite; "+
			"run `%s` before mounting (or pass --disable-localio to let nfslab do it)", ErrLocalIO, LocalIOFix)
	}
	if err := h.WriteFile(LocalIOParam, []byte("N")); err != nil {
		return fmt.Errorf("turning NFS LOCALIO off (%s): %w", LocalIOFix, err)
	}
	if st, err := LocalIO(h); err != nil || st != LocalIODisabled {
		return fmt.Errorf("%w: still %s after writing N to %s (%v)", ErrLocalIO, st, LocalIOParam, err)
	}
	return nil
}

// GuardLocalIO is RequireNoLocalIO for a client mount whose server may or
// may not be on this host. LOCALIO can only bypass the network when this
// kernel runs knfsd (in any namespace), so without nfsd it passes.
func GuardLocalIO(h Host, apply bool) error {
	if !hasNFSD(h) {
		return nil
	}
	return RequireNoLocalIO(h, apply)
}

// LocalIOSysfsGlob matches the per-client LOCALIO state files of kernels
// that have them (added after 6.12; 6.12 has only the module parameter).
const LocalIOSysfsGlob = "sys/fs/nfs/*/localio"

// DataOps are the NFS operations LOCALIO takes off the wire.
var DataOps = []string{"READ", "WRITE", "COMMIT"}

// MountOps returns the per-operation RPC counts (the first number of each
// "per-op statistics" line) of the NFS mount at mountpoint in a
// /proc/PID/mountstats file. Operations LOCALIO serves never become RPCs,
// so their counts stand still while the data changes.
func MountOps(mountstats []byte, mountpoint string) (map[string]int64, error) {
	var ops map[string]int64
	in, perOp := false, false
	for _, line := range strings.Split(string(mountstats), "\n") {
		if strings.HasPrefix(line, "device ") {
			if in {
				break
			}
			// device SRC mounted on MOUNTPOINT with fstype nfs4 statvers=1.1
			f := strings.Fields(line)
			in = len(f) >= 8 && f[3] == "on" && f[4] == mountpoint && strings.HasPrefix(f[7], "nfs")
			if in {
				ops = map[string]int64{}
			}
			perOp = false
			continue
		}
		if !in {
			continue
		}
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "per-op statistics") {
			perOp = true
			continue
		}
		name, rest, ok := strings.Cut(t, ":")
		if !perOp || !ok || name == "" || strings.ContainsAny(name, " \t") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("mountstats of %s: op %s: %w", mountpoint, name, err)
		}
		ops[name] = n
	}
	if ops == nil {
		return nil, fmt.Errorf("mountstats lists no NFS mount on %s", mountpoint)
	}
	return ops, nil
}

// LocalIOSample is what the kernel says about one NFS mount's LOCALIO at
// one moment.
type LocalIOSample struct {
	Param LocalIOState
	// Sysfs holds /sys/fs/nfs/*/localio (path: content) where the kernel
	// has those files; empty on 6.12.
	Sysfs map[string]string
	// Ops are the mount's READ, WRITE and COMMIT RPC counts.
	Ops map[string]int64
}

// SampleLocalIO reads the LOCALIO parameter, the sysfs files and the
// mount's data RPC counts from fsys (rooted at "/"; mountstats is e.g.
// "proc/self/mountstats").
func SampleLocalIO(fsys fs.FS, mountstats, mountpoint string) (LocalIOSample, error) {
	s := LocalIOSample{Param: LocalIOAbsent, Sysfs: map[string]string{}, Ops: map[string]int64{}}
	if b, err := fs.ReadFile(fsys, strings.TrimPrefix(LocalIOParam, "/")); err == nil {
		switch strings.TrimSpace(string(b)) {
		case "Y", "y", "1":
			s.Param = LocalIOEnabled
		default:
			s.Param = LocalIODisabled
		}
	}
	files, _ := fs.Glob(fsys, LocalIOSysfsGlob)
	for _, f := range files {
		if b, err := fs.ReadFile(fsys, f); err == nil {
			s.Sysfs["/"+f] = strings.TrimSpace(string(b))
		}
	}
	b, err := fs.ReadFile(fsys, mountstats)
	if err != nil {
		return s, fmt.Errorf("reading /%s: %w", mountstats, err)
	}
	all, err := MountOps(b, mountpoint)
	if err != nil {
		return s, err
	}
	for _, op := range DataOps {
		s.Ops[op] = all[op]
	}
	return s, nil
}

// LocalIOBypass compares two samples of a mount taken while dataBytes of
// its data changed (as the workload measured it). Bypassed is true when
// the data moved but no READ, WRITE or COMMIT RPC did: the client used
// LOCALIO, so no packet fault could reach that I/O. Why says so with the
// evidence: the parameter, the sysfs files, the frozen counts.
func LocalIOBypass(before, after LocalIOSample, dataBytes int64) (bypassed bool, why string) {
	var moved []string
	frozen := true
	for _, op := range DataOps {
		d := after.Ops[op] - before.Ops[op]
		moved = append(moved, fmt.Sprintf("%s %d -> %d", op, before.Ops[op], after.Ops[op]))
		if d != 0 {
			frozen = false
		}
	}
	sysfs := "no " + "/" + LocalIOSysfsGlob + " on this kernel"
	if len(after.Sysfs) > 0 {
		var parts []string
		for p, v := range after.Sysfs {
			parts = append(parts, p+"="+v)
		}
		sort.Strings(parts)
		sysfs = strings.Join(parts, ", ")
	}
	ev := fmt.Sprintf("%s=%s; %s; mountstats RPCs %s while %d bytes of data changed", LocalIOParam, paramValue(after.Param), sysfs, strings.Join(moved, ", "), dataBytes)
	if dataBytes > 0 && frozen && after.Param != LocalIODisabled {
		return true, "NFS LOCALIO served the I/O: " + ev + ": the client reads and writes the server's files directly, " +
			"around the network, so packet faults reach only metadata; `" + LocalIOFix + "` before mounting (or --disable-localio) puts the I/O back on the wire"
	}
	return false, "the I/O went over the network (RPC): " + ev
}

func paramValue(s LocalIOState) string {
	switch s {
	case LocalIOEnabled:
		return "Y"
	case LocalIODisabled:
		return "N"
	}
	return "absent"
}
