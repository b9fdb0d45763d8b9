package vm

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestBoxSpecHasItsOwnKey(t *testing.T) {
	lab := testSpec()
	n := len(lab.Packages)
	box := BoxSpec(lab)
	if box.Key() == lab.Key() {
		t.Fatalf("box and lab image share key %s", box.Key())
	}
	if len(lab.Packages) != n {
		t.Fatalf("BoxSpec changed the lab spec's packages: %v", lab.Packages)
	}
	for _, p := range []string{"openssh-server", "sudo", "systemd-sysv", "rsync"} {
		if !strings.Contains(","+strings.Join(box.sortedPackages(), ",")+",", ","+p+",") {
			t.Errorf("box packages lack %s: %v", p, box.sortedPackages())
		}
	}
	// The lab image's key must not move because the field exists.
	lab2 := lab
	lab2.Flavour = ""
	if lab2.Key() != lab.Key() {
		t.Fatal("empty flavour changed the key")
	}
}

func TestBoxMetadata(t *testing.T) {
	b, err := BoxMetadata(4096)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["provider"] != "libvirt" || m["format"] != "qcow2" || m["virtual_size"] != float64(4) {
		t.Fatalf("metadata %s", b)
	}
	if b, _ := BoxMetadata(4097); !strings.Contains(string(b), `"virtual_size": 5`) {
		t.Fatalf("virtual size not rounded up: %s", b)
	}
}

func TestBoxVagrantfileBootsShippedKernel(t *testing.T) {
	v := BoxVagrantfile(BoxCmdline)
	for _, want := range []string{`lv.kernel = File.join(dir, "vmlinuz")`, `lv.initrd = File.join(dir, "initrd.img")`,
		`lv.cmd_line = "root=/dev/vda rw console=ttyS0 net.ifnames=0"`} {
		if !strings.Contains(v, want) {
			t.Errorf("box Vagrantfile lacks %q:\n%s", want, v)
		}
	}
}
