// Package vm builds and boots nfslab's lab VM: a small Debian guest whose
// kernel has the NFS client and server that the host may lack.
//
// The image is made with debootstrap into a cache directory keyed by a hash
// of its inputs (suite, package list, guest init), turned into an ext4 disk
// with `mkfs.ext4 -d` (no loop mounts), and booted with qemu using the
// distribution kernel and initrd taken from the image. Every run writes to a
// throwaway qcow2 overlay, so the cached base stays clean. The host passes
// the nfslab binary, the scenarios and the probe over a 9p share and reads
// the results back from it; the guest has no network device at all, and the
// host's own namespaces, firewall, routes and mounts are never touched.
//
// Inside the guest a tiny shell init mounts the share and hands over to
// `nfslab vm agent`, which runs the job's steps as argument lists, checks
// after each that nothing of nfslab is left (iptables, routes, mounts,
// namespaces, links, processes), writes status.json and powers off.
package vm
