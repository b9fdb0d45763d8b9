// Package mount mounts and unmounts the NFS (and FUSE) filesystems that
// nfslab experiments run on, the way a lab needs it when the server may be
// unreachable on purpose:
//
//   - a typed NFS option set parsed strictly from the mount(8) form
//     ("proto=tcp,port=2049,soft,timeo=10") whose Validate explains units;
//   - a Mounter interface in the style of kubernetes mount-utils, with a
//     Linux implementation over mount(2)/umount2(2) and a Fake that fails
//     like the kernel (EBUSY, EINVAL, ENOENT) and can hang like it;
//   - unmount that never hangs its caller: a plain unmount, then MNT_FORCE,
//     then MNT_DETACH, each attempt bounded, the whole call bounded;
//   - mount state read from /proc/self/mountinfo only, never by a stat of a
//     path that may sit on a dead server;
//   - WithTimeout for any other filesystem call on such a path;
//   - mounts made under nfslab's own directory (DefaultRoot) and found again
//     by Sweep, which touches nothing else.
package mount
