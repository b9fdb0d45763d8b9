// Package cleanup removes everything nfslab created, for `nfslab heal
// --all` and the daemon's start-up: after a crash nothing of nfslab may
// stay on the machine.
//
// Sweep runs one step per kind of object, in the reverse order of their
// creation in an experiment (server, mount, faultfs, container, fault):
//
//	faults      nfslab's iptables rules, chains and routes (netfault HealAll)
//	containers  podman containers labelled io.nfslab.owner=nfslab
//	netns-names /run/netns/nfslab-ctr-* names attached to containers
//	processes   recorded children (the JVM probe) of a dead nfslab, after
//	            aborting the FUSE connection of faultfs mounts nobody serves
//	faultfs     FUSE mounts under /run/nfslab/faultfs or recorded elsewhere,
//	            and stale control sockets
//	mounts      NFS (and other) mounts under /run/nfslab/mnt
//	nfs-server  the netns knfsd servers whose state is under /run/nfslab/nfsd
//	            (with an ext4 export: its mount, dm device, loop device)
//	exports     directories below /run/nfslab/export no server removed (a
//	            killed container-server run's); only nfslab's export mount
//	            on one is unmounted, any other mount keeps it
//	block-devices dm devices named nfslab-*, then loop devices backed by a
//	            file under /run/nfslab/nfsd (the servers' leftovers)
//
// Each step finds only nfslab's objects (its labels, its name prefix, its
// directories), treats "not found" as done, and does not stop the steps
// after it when it fails: the errors are joined and the Report says what
// each step removed, kept or skipped. Every side effect sits behind a small
// interface (netfault.Injector, container.Runtime, mount.Mounter,
// proctrack.Procs, and the NetnsDetacher, ServerStopper and FuseAborter
// here) so the order and the semantics are tested with fakes, and every
// root is an option so the real effect is tested in temporary directories.
package cleanup
