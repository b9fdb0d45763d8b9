package container

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// OwnImageRepo is the repository of the images nfslab builds itself: no
// registry is needed, and `podman images localhost/nfslab/*` lists them.
const OwnImageRepo = "localhost/nfslab/"

// EnsureOwnImage makes the image nfslab builds from host files present in
// rt and returns its reference, REPO:TAG with TAG the first 16 hex digits
// of the rootfs tarball's SHA-256: an unchanged spec (the same host files)
// is imported once, a changed one (a package upgrade) gets a new tag.
// Equivalent to: tar ... | podman import - localhost/nfslab/NAME:TAG.
func EnsureOwnImage(ctx context.Context, rt Runtime, name string, spec RootfsSpec) (string, error) {
	tmp, err := os.CreateTemp("", "nfslab-rootfs-*.tar")
	if err != nil {
		return "", fmt.Errorf("building image %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	if err := WriteRootfs(ctx, io.MultiWriter(tmp, h), spec); err != nil {
		return "", fmt.Errorf("building image %s: %w", name, err)
	}
	ref := OwnImageRepo + name + ":" + hex.EncodeToString(h.Sum(nil))[:16]
	ok, err := rt.ImageExists(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("looking up image %s: %w", ref, err)
	}
	if ok {
		return ref, nil
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("building image %s: %w", ref, err)
	}
	if _, err := rt.Import(ctx, tmp, ref); err != nil {
		return "", fmt.Errorf("importing image %s: %w", ref, err)
	}
	return ref, nil
}

// OwnNFSServerImage names nfslab's NFS server image (EnsureOwnImage).
const OwnNFSServerImage = "nfs-server"

// nfsServerEntrypoint does what the workshop's image does
// (ghcr.io/normal-computing/nfs-server: NFSv4 only, /mnt/data exported as
// the pseudo root to NFS_SERVER_ALLOWED_CLIENTS with root_squash, a 10 s
// grace), with the kernel's nfsd of the container's own network namespace.
// The lease is 15 s, as the netns server's (nfsserver's LeaseTime), not
// knfsd's default 90 s: the NFSv4 client caps its connect timeout by the
// lease (nfs4_set_lease_period), so with 90 s a soft mount behind a drop
// gives up minutes later than against the netns server.
// mountd stays in front as PID 1, so `podman stop` ends the server; knfsd's
// threads end with the namespace. The port is given as a number: the image
// has no /etc/services to resolve "nfs".
const nfsServerEntrypoint = `set -eu
clients=${NFS_SERVER_ALLOWED_CLIENTS:-10.88.0.0/12}
if [ ! -d /mnt/data ]; then echo "no data directory found at /mnt/data" >&2; exit 1; fi
echo "/mnt/data $clients(rw,sync,root_squash,no_subtree_check,fsid=0,insecure)" >/etc/exports
mount -t nfsd nfsd /proc/fs/nfsd
exportfs -rv
nfsd_debug= mountd_debug=
if [ "${NFS_SERVER_DEBUG:-0}" = 1 ]; then nfsd_debug=-d; mountd_debug="-d all"; fi
rpc.nfsd -N 3 -V 4 --grace-time 10 --lease-time 15 -p 2049 $nfsd_debug
echo "nfs-server: serving /mnt/data to $clients"
exec rpc.mountd -N 2 -N 3 -V 4 --foreground $mountd_debug
`

// nfsServerEntrypointPath is where the entrypoint lies in the image.
const nfsServerEntrypointPath = "/usr/local/bin/nfs-server"

// nfsServerTools are the programs the entrypoint runs, found on PATH.
var nfsServerTools = []string{"sh", "mount", "exportfs", "rpc.nfsd", "rpc.mountd"}

// NFSServerRootfs is the rootfs of nfslab's own NFS server image, made of
// this machine's nfs-kernel-server and util-linux (the lab VM's; Debian's
// packages), with the shared libraries they need. lookPath is
// exec.LookPath in production.
func NFSServerRootfs(lookPath func(string) (string, error)) (RootfsSpec, error) {
	spec := RootfsSpec{
		Files: map[string][]byte{
			nfsServerEntrypointPath: []byte(nfsServerEntrypoint),
			// libtirpc (rpc.nfsd, rpc.mountd) reads the transports here.
			"/etc/netconfig": []byte(netconfig),
			"/etc/passwd":    []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
			"/etc/group":     []byte("root:x:0:\nnogroup:x:65534:\n"),
		},
		Dirs: []string{"/mnt/data", "/var/lib/nfs", "/var/lib/nfs/v4recovery", "/proc", "/run"},
	}
	for _, t := range nfsServerTools {
		p, err := lookPath(t)
		if err != nil {
			return RootfsSpec{}, fmt.Errorf("building the NFS server image: %s not found (install nfs-kernel-server and util-linux): %w", t, err)
		}
		spec.Executables = append(spec.Executables, p)
	}
	return spec, nil
}

// NFSServerCommand runs the entrypoint with the image's own sh.
func NFSServerCommand(spec RootfsSpec) []string {
	return []string{spec.Executables[0], nfsServerEntrypointPath}
}

// netconfig is Debian's /etc/netconfig for IPv4 and IPv6 over TCP and UDP.
const netconfig = `udp        tpi_clts      v     inet     udp     -       -
tcp        tpi_cots_ord  v     inet     tcp     -       -
udp6       tpi_clts      v     inet6    udp     -       -
tcp6       tpi_cots_ord  v     inet6    tcp     -       -
rawip      tpi_raw       -     inet      -      -       -
local      tpi_cots_ord  -     loopback  -      -       -
unix       tpi_cots_ord  -     loopback  -      -       -
`
