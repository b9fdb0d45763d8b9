package vm

import (
	"fmt"
	"strings"
)

// Guest is a flavour of the lab VM: a Debian release and the packages the
// guest needs on top of debootstrap's minbase (the kernel, the NFS server
// and client, the fault tools and a JRE for the journal probe, compiled on
// the host with javac --release 17 so one class runs on either JRE). It is
// the only place a flavour's package list is written down.
type Guest struct {
	// Suite is the Debian release name; it is also the flavour's name on
	// the command line (--guest).
	Suite string
	// About says what the flavour looks like, for help texts.
	About    string
	Packages []string
}

// commonPackages is what every flavour installs.
func commonPackages() []string {
	return []string{
		"linux-image-amd64",
		"nfs-kernel-server",
		"nfs-common",
		"iptables",
		"iproute2",
		"kmod",
		"procps",
		"util-linux",
		// dmsetup switches the server-eio fault (device-mapper `error`
		// target over the export's loop device); losetup comes with
		// util-linux, mkfs.ext4 and filefrag with e2fsprogs (in bookworm's
		// minbase, not in trixie's).
		"dmsetup",
		"e2fsprogs",
	}
}

// Guests returns the flavours, the default first. Each call returns fresh
// slices.
func Guests() []Guest {
	return []Guest{
		// podman 5.4 (with netavark, and nftables for its nftables firewall
		// driver) for the podmanguest tests, the container server and the
		// probe container: a current laptop's container stack. catatonit is
		// podman's --init (a Recommends, which debootstrap skips): the
		// probe container's JVM needs an init to die of its own abort with
		// 134.
		{Suite: "trixie", About: "Debian 13, kernel 6.12, nfs-utils 2.8, OpenJDK 21, podman 5.4",
			Packages: append(commonPackages(), "openjdk-21-jre-headless", "podman", "nftables", "catatonit")},
		// podman 4.3 for the container server (nfs-localhost-pitfall):
		// runc, which the v5 bindings need against 4.3 (docs/container.md),
		// and netavark 1.4 (iptables driver only) named because podman's
		// containers-common depends on the virtual container-network-stack,
		// which debootstrap does not choose a provider for; catatonit as in
		// trixie.
		{Suite: "bookworm", About: "Debian 12, kernel 6.1, nfs-utils 2.6, OpenJDK 17, podman 4.3",
			Packages: append(commonPackages(), "openjdk-17-jre-headless", "podman", "runc", "netavark", "catatonit")},
	}
}

// DefaultGuest is the flavour used when none is named: a current laptop's
// stack.
const DefaultGuest = "trixie"

// GuestNames lists the flavours' names, the default first.
func GuestNames() []string {
	var out []string
	for _, g := range Guests() {
		out = append(out, g.Suite)
	}
	return out
}

// LookupGuest returns the flavour called name, or an ErrInvalid error
// naming the value and the choices.
func LookupGuest(name string) (Guest, error) {
	for _, g := range Guests() {
		if g.Suite == name {
			return g, nil
		}
	}
	return Guest{}, fmt.Errorf("%w: guest %q is not one of %s", ErrInvalid, name, strings.Join(GuestNames(), ", "))
}

// Spec is the lab image spec of the flavour with the given guest init and
// disk size.
func (g Guest) Spec(guestInit []byte, diskMB int) ImageSpec {
	return ImageSpec{Suite: g.Suite, Packages: append([]string(nil), g.Packages...), GuestInit: guestInit, DiskSizeMB: diskMB}
}
