package vm

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// BoxFlavour marks the Vagrant box variant of the guest image in its cache
// key; bump it when BoxFiles or the box customisation change.
const BoxFlavour = "vagrant-box/2"

// BoxPackages is what a Vagrant machine needs on top of the lab guest's
// packages: systemd as init (Vagrant's Debian guest plugin expects
// hostnamectl and systemd-networkd), sshd and sudo for the vagrant user,
// rsync for the synced folder. Nothing is installed at `vagrant up`.
var BoxPackages = []string{
	"systemd-sysv", "udev", "dbus", "openssh-server", "sudo", "rsync", "conntrack", "ca-certificates",
}

// InsecureKeyGlob is where Debian's vagrant package ships Vagrant's
// well-known insecure public key (`dpkg -L vagrant | grep keys`).
const InsecureKeyGlob = "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub"

// FindInsecureKey returns the insecure public key of the installed vagrant.
func FindInsecureKey() (string, error) {
	m, _ := filepath.Glob(InsecureKeyGlob)
	if len(m) == 0 {
		return "", fmt.Errorf("vagrant's insecure public key not found (%s); install vagrant or pass --insecure-key", InsecureKeyGlob)
	}
	return m[len(m)-1], nil
}

// BoxName is the name `vagrant box add` registers the box of the suite's
// guest under; the Vagrantfile uses nfslab/bookworm unless
// NFSLAB_VAGRANT_BOX says otherwise.
func BoxName(suite string) string { return "nfslab/" + suite }

// BoxSpec is the image spec of the box: the lab guest's packages plus
// BoxPackages, flavoured so it never shares a cache entry with the lab VM.
func BoxSpec(lab ImageSpec) ImageSpec {
	s := lab
	s.Packages = append(append([]string(nil), lab.Packages...), BoxPackages...)
	s.Flavour = BoxFlavour
	return s
}

// BoxMetadata is the libvirt box's metadata.json; virtualSizeGB is the
// disk's virtual size, rounded up.
func BoxMetadata(diskMB int) ([]byte, error) {
	m := struct {
		Provider    string `json:"provider"`
		Format      string `json:"format"`
		VirtualSize int    `json:"virtual_size"`
	}{"libvirt", "qcow2", (diskMB + 1023) / 1024}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// BoxVagrantfile is the Vagrantfile inside the box. The image has no boot
// loader (the lab VM boots its kernel directly too), so the box carries the
// kernel and initrd and points libvirt's direct kernel boot at them.
func BoxVagrantfile(cmdline string) string {
	return strings.Join([]string{
		"# Written by `nfslab vm box`: nfslab's Debian guest, booted with its own",
		"# kernel and initrd (shipped in this box) through libvirt's direct kernel boot.",
		`Vagrant.configure("2") do |config|`,
		`  dir = File.dirname(__FILE__)`,
		`  config.vm.boot_timeout = 1800 # TCG (no KVM) boots take minutes`,
		`  config.vm.provider :libvirt do |lv|`,
		`    lv.kernel = File.join(dir, "vmlinuz")`,
		`    lv.initrd = File.join(dir, "initrd.img")`,
		fmt.Sprintf(`    lv.cmd_line = %q`, cmdline),
		`    lv.disk_bus = "virtio"`,
		`  end`,
		`end`,
		"",
	}, "\n")
}

// BoxCmdline is the kernel command line of the box: the root disk is the
// box image on virtio (vda), the console on the serial port for
// `virsh console`.
const BoxCmdline = "root=/dev/vda rw console=ttyS0 net.ifnames=0"
