package nfsserver

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// ServerFault is a fault of nfslab's own NFS server (the netns knfsd): the
// server fails, not the network. Each is switched on and off; off restores
// what on changed, and "already so" is done both ways so that a heal after
// a crash is safe to repeat.
type ServerFault string

const (
	// FaultStop stops knfsd's threads (`rpc.nfsd 0`); off starts them again
	// with Start's arguments. Without client tracking in a namespace, a
	// restarted knfsd is in its grace period (GraceTime) and the client
	// must reclaim its state.
	FaultStop ServerFault = "stop"
	// FaultUnexport removes the export (`exportfs -u`); off exports it
	// again. The client's file handles go stale (ESTALE).
	FaultUnexport ServerFault = "unexport"
	// FaultExpireClients writes "expire" to every
	// /proc/fs/nfsd/clients/*/ctl: knfsd forgets the clients' state (opens,
	// locks, delegations) and they must reclaim. Off is a no-op: the
	// client restores its state itself.
	FaultExpireClients ServerFault = "expire-clients"
	// FaultFill fills the size-bounded export (ExportSize) with a ballast
	// file, so writes get ENOSPC; off removes the ballast.
	FaultFill ServerFault = "fill"
	// FaultEIO makes the server's disk fail: the Target's sectors of the
	// ext4 export (ExportFS) are mapped to the device-mapper `error`
	// target (EIO); off maps the whole device linear again.
	FaultEIO ServerFault = "eio"
)

// ServerFaults lists the faults in documentation order.
var ServerFaults = []ServerFault{FaultStop, FaultUnexport, FaultExpireClients, FaultFill, FaultEIO}

// ParseServerFault names the bad value.
func ParseServerFault(s string) (ServerFault, error) {
	f := ServerFault(s)
	if !slices.Contains(ServerFaults, f) {
		names := make([]string, len(ServerFaults))
		for i, x := range ServerFaults {
			names[i] = string(x)
		}
		return "", invalid("server fault %q (want one of %s)", s, strings.Join(names, ", "))
	}
	return f, nil
}

// ErrNotRunning: the server fault needs the netns server and it is not there.
var ErrNotRunning = errors.New("NFS server is not running")

// Fault switches server fault f on or off. t is FaultEIO's target (zero
// for the others and for switching eio off); it is validated before
// anything is done.
func (s *NetnsServer) Fault(ctx context.Context, f ServerFault, on bool, t FaultTarget) error {
	if !on && f == FaultEIO {
		t = FaultTarget{} // off restores the whole device
	} else if err := t.Validate(f); err != nil {
		return err
	}
	if !s.host.Exists(s.cfg.netnsFile()) || !s.host.Exists(s.cfg.mntnsFile()) {
		return fmt.Errorf("%w: no namespace %s (start it with `nfslab nfs-server start`)", ErrNotRunning, s.cfg.Name)
	}
	switch f {
	case FaultStop:
		if on {
			return s.StopThreads(ctx)
		}
		return s.StartThreads(ctx)
	case FaultUnexport:
		if on {
			return s.Unexport(ctx)
		}
		return s.Export(ctx)
	case FaultFill:
		if on {
			return s.Fill(ctx)
		}
		return s.Unfill(ctx)
	case FaultEIO:
		if on {
			return s.EIO(ctx, t)
		}
		return s.EIOOff(ctx)
	case FaultExpireClients:
		if on {
			_, err := s.ExpireClients(ctx)
			return err
		}
		return nil
	}
	return invalid("server fault %q", f)
}

// StopThreads stops knfsd; clients' RPCs fail (connection refused) until
// StartThreads. Equivalent to: `NSENTER rpc.nfsd 0`.
func (s *NetnsServer) StopThreads(ctx context.Context) error {
	if _, err := s.inServer(ctx, "rpc.nfsd", "0"); err != nil {
		return fmt.Errorf("stopping knfsd threads in %s: %w", s.cfg.Name, err)
	}
	return nil
}

// StartThreads starts knfsd with Start's arguments (a no-op for knfsd when
// it runs) and checks that it has threads. Equivalent to:
// `NSENTER rpc.nfsd -N 3 -V 4 --no-udp -G 10 -L 15 -H 10.213.0.2 -p 2049 8`.
func (s *NetnsServer) StartThreads(ctx context.Context) error {
	if n, err := s.threads(ctx); err == nil && n > 0 {
		return nil // running: rpc.nfsd would fail to change versions
	}
	if _, err := s.inServer(ctx, "rpc.nfsd", s.cfg.nfsdArgs()...); err != nil {
		return fmt.Errorf("starting knfsd threads in %s: %w", s.cfg.Name, err)
	}
	n, err := s.threads(ctx)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("starting knfsd in %s: /proc/fs/nfsd/threads is 0 after rpc.nfsd", s.cfg.Name)
	}
	return nil
}

// Unexport removes the export; "not exported" is done. A placeholder
// export (an empty directory in the state directory, read-only, fsid
// FSID+1) stays for the same client, so that the server still knows the
// client and answers its old file handles with NFS4ERR_STALE: the client
// gets ESTALE. Without it knfsd knows the client no longer and answers
// NFS4ERR_ACCESS (measured in the lab VM: the JVM's msync got "Permission
// denied"). It also flushes knfsd's export cache. Equivalent to:
//
//	NSENTER exportfs -i -o ro,...,fsid=2050 10.213.0.1:STATE/placeholder
//	NSENTER exportfs -u 10.213.0.1:EXPORT
func (s *NetnsServer) Unexport(ctx context.Context) error {
	ph := s.cfg.placeholder()
	if err := s.host.MkdirAll(ph); err != nil {
		return fmt.Errorf("creating the placeholder export %s: %w", ph, err)
	}
	if _, err := s.inServer(ctx, "exportfs", s.cfg.placeholderArgs()...); err != nil {
		return fmt.Errorf("exporting the placeholder %s: %w", ph, err)
	}
	if _, err := s.inServer(ctx, "exportfs", "-u", s.cfg.exportClient()); err != nil && !notFound(err) {
		return fmt.Errorf("unexporting %s: %w", s.cfg.exportClient(), err)
	}
	return nil
}

// Export adds the export again, with Start's options (adding an export
// that exists only refreshes it), and removes the placeholder. Equivalent
// to: `NSENTER exportfs -i -o OPTIONS 10.213.0.1:EXPORT; NSENTER exportfs -u
// 10.213.0.1:STATE/placeholder`.
func (s *NetnsServer) Export(ctx context.Context) error {
	if _, err := s.inServer(ctx, "exportfs", s.cfg.exportArgs()...); err != nil {
		return fmt.Errorf("exporting %s: %w", s.cfg.exportClient(), err)
	}
	return s.removePlaceholder(ctx)
}

// removePlaceholder unexports and removes Unexport's placeholder; none is done.
func (s *NetnsServer) removePlaceholder(ctx context.Context) error {
	ph := s.cfg.placeholder()
	if !s.host.Exists(ph) {
		return nil
	}
	if _, err := s.inServer(ctx, "exportfs", "-u", s.cfg.HostAddr().String()+":"+ph); err != nil && !notFound(err) {
		return fmt.Errorf("unexporting the placeholder %s: %w", ph, err)
	}
	if err := s.host.RemoveAll(ph); err != nil {
		return fmt.Errorf("removing the placeholder %s: %w", ph, err)
	}
	return nil
}

// placeholder is the directory Unexport exports instead of ExportDir.
func (c NetnsConfig) placeholder() string { return path.Join(c.StateDir, "placeholder") }

func (c NetnsConfig) placeholderArgs() []string {
	return []string{"-i", "-o", "ro,sync,no_subtree_check,insecure,fsid=" + strconv.Itoa(c.FSID+1), c.HostAddr().String() + ":" + c.placeholder()}
}

// clientsDir is knfsd's per-client state directory (Linux >= 5.3).
const clientsDir = "/proc/fs/nfsd/clients"

// ExpireClients writes "expire" to each client's ctl file and returns the
// client ids it expired (none is not an error: no client has state). The
// nfsd filesystem is mounted only inside the server's mount namespace, so
// the files are written through the root of a process in it (rpc.mountd,
// which Start runs there): /proc/PID/root/proc/fs/nfsd/clients/ID/ctl.
func (s *NetnsServer) ExpireClients(ctx context.Context) ([]string, error) {
	out, err := s.inServer(ctx, "ls", "-1", clientsDir)
	if err != nil {
		return nil, fmt.Errorf("listing %s in %s (kernel older than 5.3?): %w", clientsDir, s.cfg.Name, err)
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return nil, nil
	}
	root, err := s.mountnsRoot(ctx)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, id := range ids {
		if _, err := strconv.Atoi(id); err != nil {
			continue
		}
		ctl := root + path.Join(clientsDir, id, "ctl")
		// The write returns once knfsd has expired the client.
		if err := s.host.WriteFile(ctl, []byte("expire\n")); err != nil {
			if notFound(err) {
				continue // it went away by itself
			}
			return done, fmt.Errorf("expiring NFS client %s (writing %s): %w", id, ctl, err)
		}
		done = append(done, id)
	}
	return done, nil
}

// mountnsRoot returns /proc/PID/root of a process in the server's mount
// namespace.
func (s *NetnsServer) mountnsRoot(ctx context.Context) (string, error) {
	pids, err := s.namespacePIDs(ctx)
	if err != nil {
		return "", err
	}
	if len(pids) == 0 {
		return "", fmt.Errorf("%w: no process (rpc.mountd) in %s to reach its nfsd filesystem", ErrNotRunning, s.cfg.Name)
	}
	return "/proc/" + strconv.Itoa(pids[0]) + "/root", nil
}

// exportFSSource is the source name of the size-bounded export's tmpfs:
// it marks the mount as nfslab's in /proc/self/mountinfo.
const exportFSSource = "nfslab-export"

// ballast is the file Fill writes into the export.
const ballast = ".nfslab-fill"

// exportMounted reports whether ExportDir is nfslab's size-bounded export
// (the tmpfs, or ext4 on nfslab's dm device), from /proc/self/mountinfo
// (found after a crash too, without the config).
func (s *NetnsServer) exportMounted() bool {
	b, err := s.host.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	return mountinfoHas(string(b), s.cfg.ExportDir, exportFSSource) || mountinfoHas(string(b), s.cfg.ExportDir, s.cfg.dmDev())
}

// IsExportSource reports whether a mount's source (as mountinfo gives it)
// marks it as a netns server's size-bounded export: the tmpfs named
// exportFSSource, or ext4 on a device node nfslab's dmDev names. The
// cleanup sweep finds such a mount without the server's config, after
// the server's state is gone.
func IsExportSource(source string) bool {
	if source == exportFSSource {
		return true
	}
	name, ok := strings.CutPrefix(source, "/dev/mapper/"+DMPrefix)
	return ok && strings.HasSuffix(name, "-export") && !strings.Contains(name, "/")
}

// mountinfoHas reports whether mountinfo lists a mount on dir from source.
// Fields: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS.
func mountinfoHas(mountinfo, dir, source string) bool {
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || path.Clean(f[4]) != path.Clean(dir) {
			continue
		}
		for i := 6; i+2 < len(f); i++ {
			if f[i] == "-" && f[i+2] == source {
				return true
			}
		}
	}
	return false
}

// Fill fills the size-bounded export: a ballast file takes every free
// byte, so the client's next write that needs a block gets ENOSPC.
// Equivalent to, repeated until nothing is free:
// `stat -f -c %a:%S EXPORT; fallocate -o SIZE -l FREE EXPORT/.nfslab-fill`.
// The client keeps writing meanwhile (tmpfs fallocate of 200 MB took ~24 s
// in the emulated lab VM), so a chunk can fail with ENOSPC (the kernel
// undoes that chunk); the next one asks for half the free space. It
// refuses any other export: filling a real disk is not a lab fault.
func (s *NetnsServer) Fill(ctx context.Context) error {
	dir := s.cfg.ExportDir
	if !s.exportMounted() {
		return fmt.Errorf("%w: filling %s needs a size-bounded export (export size; the server's start mounts a tmpfs there)", ErrInvalid, dir)
	}
	if err := s.Unfill(ctx); err != nil {
		return err
	}
	file := path.Join(dir, ballast)
	var size int64
	half := false
	for range 16 {
		avail, bsize, err := s.free(ctx)
		if err != nil {
			return err
		}
		if avail == 0 {
			return nil
		}
		n := avail
		if half {
			n = max(avail/2, 1)
		}
		_, err = s.host.Run(ctx, "fallocate", "-o", strconv.FormatInt(size, 10), "-l", strconv.FormatInt(n*bsize, 10), file)
		switch {
		case err == nil:
			size += n * bsize
			half = false
		case strings.Contains(err.Error(), "No space left"):
			half = true // a writer took some of it meanwhile
		default:
			return fmt.Errorf("filling %s: %w", dir, err)
		}
	}
	if avail, bsize, err := s.free(ctx); err != nil || avail*bsize >= 1<<20 {
		return fmt.Errorf("filling %s: %d blocks still free after 16 attempts (%v)", dir, avail, err)
	}
	return nil // less than 1 MiB left: the client's writes take it at once
}

// free returns the export's free blocks and block size.
// Equivalent to: `stat -f -c %a:%S EXPORT`.
func (s *NetnsServer) free(ctx context.Context) (avail, bsize int64, err error) {
	dir := s.cfg.ExportDir
	out, err := s.host.Run(ctx, "stat", "-f", "-c", "%a:%S", dir)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the free space of %s: %w", dir, err)
	}
	a, b, ok := strings.Cut(strings.TrimSpace(string(out)), ":")
	avail, err1 := strconv.ParseInt(a, 10, 64)
	bsize, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || bsize <= 0 {
		return 0, 0, fmt.Errorf("reading the free space of %s: stat printed %q", dir, out)
	}
	return avail, bsize, nil
}

// Unfill removes the ballast; none is done.
func (s *NetnsServer) Unfill(_ context.Context) error {
	if err := s.host.RemoveAll(path.Join(s.cfg.ExportDir, ballast)); err != nil {
		return fmt.Errorf("removing the ballast of %s: %w", s.cfg.ExportDir, err)
	}
	return nil
}
