package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// BoxFile is the packed box's name inside the image directory.
const BoxFile = "vagrant-libvirt.box"

// boxFiles are written into the box rootfs (mode in the value's prefix).
var boxFiles = map[string]struct {
	mode    os.FileMode
	content string
}{
	// Vagrant's own private network is configured by its Debian guest
	// plugin (50-vagrant-*.network); the management NIC gets DHCP here.
	// The client ID is the MAC: machines from one box must not look like
	// one client to dnsmasq (it gave two of them the same address).
	"etc/systemd/network/99-nfslab-dhcp.network": {0o644,
		"[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n\n[DHCPv4]\nClientIdentifier=mac\n"},
	"etc/sudoers.d/vagrant": {0o440, "vagrant ALL=(ALL) NOPASSWD:ALL\nDefaults:vagrant !requiretty\n"},
	"etc/fstab":             {0o644, "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"},
	"etc/hostname":          {0o644, "nfslab-box\n"},
	"etc/hosts":             {0o644, "127.0.0.1 localhost nfslab-box\n::1 localhost\n"},
	// Every machine gets its own host keys, made on its first boot.
	"etc/systemd/system/ssh.service.d/nfslab-hostkeys.conf": {0o644,
		"[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n"},
	"etc/ssh/sshd_config.d/nfslab.conf": {0o644, "UseDNS no\nPasswordAuthentication no\n"},
	// Empty: systemd makes a fresh machine ID on each machine's first boot.
	"etc/machine-id": {0o444, ""},
}

// BoxCustomizer makes a debootstrapped rootfs a Vagrant box: a vagrant user
// with Vagrant's insecure key and passwordless sudo, sshd with fresh host
// keys, DHCP on the first NIC through systemd-networkd.
type BoxCustomizer struct {
	Cmd Commander
	// InsecureKey is the public key file for vagrant's authorized_keys.
	InsecureKey string
}

// Customize is an ImageSpec.Customize step.
func (c BoxCustomizer) Customize(ctx context.Context, rootfs string) error {
	key, err := os.ReadFile(c.InsecureKey)
	if err != nil {
		return fmt.Errorf("reading vagrant's insecure public key: %w", err)
	}
	if !strings.HasPrefix(string(key), "ssh-") {
		return fmt.Errorf("%w: %s is not an ssh public key", ErrInvalid, c.InsecureKey)
	}
	// Equivalent to: chroot ROOTFS useradd -m -U -s /bin/bash vagrant
	if err := c.Cmd.Run(ctx, "chroot", rootfs, "useradd", "-m", "-U", "-s", "/bin/bash", "vagrant"); err != nil {
		return fmt.Errorf("adding the vagrant user: %w", err)
	}
	uid, gid, err := passwdIDs(filepath.Join(rootfs, "etc", "passwd"), "vagrant")
	if err != nil {
		return err
	}
	ssh := filepath.Join(rootfs, "home", "vagrant", ".ssh")
	if err := os.MkdirAll(ssh, 0o700); err != nil {
		return err
	}
	ak := filepath.Join(ssh, "authorized_keys")
	if err := os.WriteFile(ak, key, 0o600); err != nil {
		return fmt.Errorf("writing authorized_keys: %w", err)
	}
	for _, p := range []string{ssh, ak} {
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
	}
	for name, f := range boxFiles {
		p := filepath.Join(rootfs, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.content), f.mode); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	// dbus's copy of the build's machine ID would become every machine's
	// (systemd reads it when /etc/machine-id is empty).
	if err := os.Remove(filepath.Join(rootfs, "var", "lib", "dbus", "machine-id")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	keys, _ := filepath.Glob(filepath.Join(rootfs, "etc", "ssh", "ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	// Equivalent to: chroot ROOTFS systemctl enable systemd-networkd
	if err := c.Cmd.Run(ctx, "chroot", rootfs, "systemctl", "enable", "systemd-networkd.service"); err != nil {
		return fmt.Errorf("enabling systemd-networkd: %w", err)
	}
	return nil
}

// passwdIDs finds user's uid and gid in an /etc/passwd file.
func passwdIDs(passwd, user string) (int, int, error) {
	f, err := os.Open(passwd)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 4 && fields[0] == user {
			uid, err1 := strconv.Atoi(fields[2])
			gid, err2 := strconv.Atoi(fields[3])
			if err1 != nil || err2 != nil {
				return 0, 0, fmt.Errorf("bad passwd line for %s in %s", user, passwd)
			}
			return uid, gid, nil
		}
	}
	return 0, 0, fmt.Errorf("user %s not in %s", user, passwd)
}

// PackBox turns a built box image into a libvirt box file in the image's
// directory (once; later calls reuse it) and returns its path.
//
// Equivalent to:
//
//	qemu-img convert -f raw -O qcow2 root.img STAGE/box.img
//	tar -C STAGE -cf IMAGE/vagrant-libvirt.box metadata.json Vagrantfile box.img vmlinuz initrd.img
func PackBox(ctx context.Context, cmd Commander, im Image, diskMB int) (string, error) {
	out := im.Path(BoxFile)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	stage := im.Path("box.tmp")
	if err := os.RemoveAll(stage); err != nil {
		return "", err
	}
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	if err := cmd.Run(ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", im.Path(im.Disk), filepath.Join(stage, "box.img")); err != nil {
		return "", fmt.Errorf("converting the disk to qcow2: %w", err)
	}
	meta, err := BoxMetadata(diskMB)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(stage, "metadata.json"), meta, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(stage, "Vagrantfile"), []byte(BoxVagrantfile(BoxCmdline)), 0o644); err != nil {
		return "", err
	}
	for _, f := range []string{im.Kernel, im.Initrd} {
		if err := copyFile(im.Path(f), filepath.Join(stage, filepath.Base(f))); err != nil {
			return "", err
		}
	}
	tmp := out + ".tmp"
	if err := cmd.Run(ctx, "tar", "-C", stage, "-cf", tmp, "metadata.json", "Vagrantfile", "box.img",
		filepath.Base(im.Kernel), filepath.Base(im.Initrd)); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("packing the box: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("publishing the box: %w", err)
	}
	return out, nil
}
