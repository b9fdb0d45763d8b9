// Package nfsserver provides the NFS servers an nfslab experiment mounts:
//
//   - netns: the kernel NFS server (knfsd) started inside a network
//     namespace of nfslab's own and reached from the host over a veth pair,
//     so that iptables rules and routes on the host really sit on the NFS
//     path (the seed's localhost set-up matched 0 packets);
//   - external: an address and export given by the user (the seed's second
//     set-up); nfslab only checks that it answers.
//
// knfsd state is per network namespace, but rpc.nfsd and exportfs talk to
// it through /proc/fs/nfsd, which must be an nfsd filesystem mounted from
// inside that namespace. The netns server therefore keeps a persistent
// mount namespace of its own (a file under its state directory, like ip
// netns does for network namespaces) in which /proc/fs/nfsd is the
// namespace's instance, and runs every nfs-utils tool through
// `nsenter --mount=FILE --net=/run/netns/NAME`. Exports are added with
// `exportfs -i -o OPTIONS CLIENT:/PATH`, never through /etc/exports.
//
// NFS LOCALIO (Linux >= 6.12) lets a client bypass the network to a knfsd
// on the same host, even across namespaces; a network experiment against a
// local server refuses to start while it is on, unless asked to turn it off.
//
// Every side effect (commands, files in /proc and /sys, signals, dials) goes
// through the Host interface, so the command sequences are tested with a
// fake; the network plumbing is tested for real in namespaces the test owns,
// and knfsd itself in the lab VM.
package nfsserver
