package vm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// chrootFake plays `chroot ROOTFS useradd ...` by appending to the rootfs's
// passwd, and records every call.
type chrootFake struct{ calls []string }

func (f *chrootFake) Run(_ context.Context, name string, args ...string) error {
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	if name == "chroot" && len(args) > 1 && args[1] == "useradd" {
		p := filepath.Join(args[0], "etc", "passwd")
		fh, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer fh.Close()
		_, err = fh.WriteString("vagrant:x:1000:1000::/home/vagrant:/bin/bash\n")
		return err
	}
	return nil
}

func TestBoxCustomize(t *testing.T) {
	rootfs := t.TempDir()
	for _, d := range []string{"etc/ssh", "home/vagrant"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc/ssh/ssh_host_ed25519_key"), []byte("secret"), 0o600)
	key := filepath.Join(t.TempDir(), "vagrant.pub")
	os.WriteFile(key, []byte("ssh-rsa AAAA vagrant insecure public key\n"), 0o644)
	f := &chrootFake{}
	if err := (BoxCustomizer{Cmd: f, InsecureKey: key}).Customize(context.Background(), rootfs); err != nil {
		t.Fatal(err)
	}
	ak, err := os.ReadFile(filepath.Join(rootfs, "home/vagrant/.ssh/authorized_keys"))
	if err != nil || !strings.HasPrefix(string(ak), "ssh-rsa AAAA") {
		t.Fatalf("authorized_keys: %q %v", ak, err)
	}
	st, _ := os.Stat(filepath.Join(rootfs, "etc/sudoers.d/vagrant"))
	if st == nil || st.Mode().Perm() != 0o440 {
		t.Fatalf("sudoers file mode: %v", st)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "etc/ssh/ssh_host_ed25519_key")); !os.IsNotExist(err) {
		t.Fatalf("shared host key kept: %v", err)
	}
	fstab, _ := os.ReadFile(filepath.Join(rootfs, "etc/fstab"))
	if !strings.HasPrefix(string(fstab), "/dev/vda / ext4") {
		t.Fatalf("fstab %q", fstab)
	}
	want := []string{"chroot " + rootfs + " useradd -m -U -s /bin/bash vagrant",
		"chroot " + rootfs + " systemctl enable systemd-networkd.service"}
	if strings.Join(f.calls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(f.calls, "\n"), strings.Join(want, "\n"))
	}
}

func TestBoxCustomizeRefusesNonKey(t *testing.T) {
	key := filepath.Join(t.TempDir(), "k")
	os.WriteFile(key, []byte("-----BEGIN RSA PRIVATE KEY-----\n"), 0o600)
	err := (BoxCustomizer{Cmd: &chrootFake{}, InsecureKey: key}).Customize(context.Background(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "not an ssh public key") {
		t.Fatalf("err = %v", err)
	}
}
