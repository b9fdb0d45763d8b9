package vm

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nfslab/nfslab/pkg/clock"
)

const testFragment = "# comment\nCONFIG_NFS_LOCALIO=y\nCONFIG_LOCALVERSION=\"-nfslab\"\nCONFIG_NR_CPUS=8\n"

func TestKernelKeyChangesWithVersionAndFragment(t *testing.T) {
	s := LocalIOKernel([]byte(testFragment))
	k := s.Key("6.12.94-1")
	if !strings.HasPrefix(k, "localio-") || k != s.Key("6.12.94-1") {
		t.Fatalf("key %q not stable or unnamed", k)
	}
	if s.Key("6.12.117-1") == k {
		t.Error("source version does not change the key")
	}
	s2 := LocalIOKernel([]byte(testFragment + "CONFIG_VETH=y\n"))
	if s2.Key("6.12.94-1") == k || s2.FragmentHash() == s.FragmentHash() {
		t.Error("fragment does not change the key")
	}
}

func TestKernelSpecValidate(t *testing.T) {
	good := LocalIOKernel([]byte(testFragment))
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]KernelSpec{
		"package": {Name: "x", Suite: "trixie", Package: "linux-image-amd64", Fragment: []byte(testFragment)},
		"suite":   {Name: "x", Suite: "tri xie", Package: "linux-source-6.12", Fragment: []byte(testFragment)},
		"empty":   {Name: "x", Suite: "trixie", Package: "linux-source-6.12", Fragment: []byte("# nothing\n")},
		"name":    {Name: "a/b", Suite: "trixie", Package: "linux-source-6.12", Fragment: []byte(testFragment)},
	} {
		if err := s.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMissingSettings(t *testing.T) {
	cfg := "CONFIG_NFS_LOCALIO=y\n# CONFIG_NR_CPUS is not set\nCONFIG_NR_CPUS=64\nCONFIG_LOCALVERSION=\"-nfslab\"\n"
	got := MissingSettings([]byte(testFragment), []byte(cfg))
	if !slices.Equal(got, []string{"CONFIG_NR_CPUS=8"}) {
		t.Errorf("missing %q", got)
	}
	if got := MissingSettings([]byte(testFragment), []byte("# CONFIG_NFS_LOCALIO is not set\n")); len(got) != 3 {
		t.Errorf("a dropped symbol must be reported: %q", got)
	}
}

const testInRelease = `-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Origin: Debian
Suite: stable
MD5Sum:
 6cce79184b4035d44c70e5862cce8cca  6104453 main/binary-amd64/Packages.gz
SHA256:
 %s %d main/binary-amd64/Packages.gz
 1fdde64e761ee4101b84fe44261ce3830b1025fd890b2c7f7df0bc3c2110a6b4  6104453 main/binary-all/Packages.gz
-----BEGIN PGP SIGNATURE-----
`

func TestReleaseHash(t *testing.T) {
	in := fmt.Sprintf(testInRelease, strings.Repeat("a", 64), 42)
	sum, n, err := ReleaseHash([]byte(in), "main/binary-amd64/Packages.gz")
	if err != nil || sum != strings.Repeat("a", 64) || n != 42 {
		t.Fatalf("got %q %d %v", sum, n, err)
	}
	if _, _, err := ReleaseHash([]byte(in), "main/binary-i386/Packages.gz"); err == nil {
		t.Error("an index InRelease does not list must fail")
	}
}

const testPackages = `Package: linux-source-6.12
Version: 6.12.94-1
Filename: pool/main/l/linux/linux-source-6.12_6.12.94-1_all.deb
Size: 10
SHA256: %s

Package: linux-source-6.1
Version: 6.1.150-1
Filename: pool/main/l/linux/linux-source-6.1_6.1.150-1_all.deb
SHA256: %s

Package: linux-source-6.12
Version: 6.12.117-1
Filename: pool/main/l/linux/linux-source-6.12_6.12.117-1_all.deb
Size: %d
SHA256: %s
`

func TestFindPackageTakesTheHighestVersion(t *testing.T) {
	h := strings.Repeat("b", 64)
	idx := fmt.Sprintf(testPackages, h, h, 7, h)
	p, err := FindPackage([]byte(idx), "linux-source-6.12")
	if err != nil || p.Version != "6.12.117-1" || p.Base() != "linux-source-6.12_6.12.117-1_all.deb" || p.Size != 7 {
		t.Fatalf("got %+v %v", p, err)
	}
	if _, err := FindPackage([]byte(idx), "linux-source-6.17"); err == nil {
		t.Error("a missing package must fail")
	}
	if !versionLess("6.12.94-1", "6.12.117-1") || versionLess("6.12.117-1", "6.12.94-1") || versionLess("1.0", "1.0") {
		t.Error("versionLess")
	}
}

// fakeMirror serves files from a map and records the URLs.
type fakeMirror struct {
	files map[string][]byte
	got   []string
}

func (f *fakeMirror) Fetch(_ context.Context, url, dst string) error {
	f.got = append(f.got, url)
	b, ok := f.files[url]
	if !ok {
		return fmt.Errorf("fetching %s: 404 Not Found", url)
	}
	return os.WriteFile(dst, b, 0o644)
}

// fakeKernelCmd plays gpgv, dpkg-deb, tar and make: configure writes the
// .config given, bzImage writes the image and the release.
type fakeKernelCmd struct {
	config string
	calls  []string
	gpgErr error
}

func (f *fakeKernelCmd) Run(_ context.Context, name string, args ...string) error {
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	if name == "gpgv" {
		return f.gpgErr
	}
	if name != "nice" {
		return nil
	}
	var out string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "O="); ok {
			out = v
		}
	}
	switch {
	case slices.Contains(args, "allnoconfig"):
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(out, ".config"), []byte(f.config), 0o644)
	case slices.Contains(args, "bzImage"):
		for p, c := range map[string]string{"arch/x86/boot/bzImage": "kernel", "include/config/kernel.release": "6.12.117-nfslab\n"} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(out, p)), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, p), []byte(c), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func testKernelMirror(t *testing.T) (*fakeMirror, string) {
	t.Helper()
	deb := []byte("the source deb")
	dsum := sha256.Sum256(deb)
	idx := fmt.Sprintf(testPackages, strings.Repeat("c", 64), strings.Repeat("c", 64), len(deb), hex.EncodeToString(dsum[:]))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(idx))
	zw.Close()
	isum := sha256.Sum256(gz.Bytes())
	m := "http://mirror.test/debian"
	return &fakeMirror{files: map[string][]byte{
		m + "/dists/trixie/InRelease":                                 []byte(fmt.Sprintf(testInRelease, hex.EncodeToString(isum[:]), gz.Len())),
		m + "/dists/trixie/main/binary-amd64/Packages.gz":             gz.Bytes(),
		m + "/pool/main/l/linux/linux-source-6.12_6.12.117-1_all.deb": deb,
	}}, m
}

func TestKernelBuilderBuildsOnceAndChecksTheConfig(t *testing.T) {
	mir, url := testKernelMirror(t)
	cmd := &fakeKernelCmd{config: testFragment}
	b := KernelBuilder{CacheDir: t.TempDir(), Mirror: url, Cmd: cmd, Fetch: mir, Clock: clock.Real{}, Log: slog.New(slog.DiscardHandler), Jobs: 2}
	spec := LocalIOKernel([]byte(testFragment))
	ctx := context.Background()
	k, err := b.Get(ctx, spec, false)
	if err != nil {
		t.Fatal(err)
	}
	if k.Release != "6.12.117-nfslab" || k.Source.Version != "6.12.117-1" || filepath.Base(k.Dir) != spec.Key("6.12.117-1") {
		t.Fatalf("kernel %+v", k)
	}
	for _, f := range []string{"vmlinuz", "config", manifestFile} {
		if _, err := os.Stat(filepath.Join(k.Dir, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(k.Dir, "src")); err == nil {
		t.Error("the source tree was left in the cache")
	}
	joined := strings.Join(cmd.calls, "\n")
	for _, want := range []string{"gpgv --keyring " + DebianKeyring, "nice -n 19 make -s -C", "KCONFIG_ALLCONFIG=", "allnoconfig", "-j2 bzImage"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no %q in\n%s", want, joined)
		}
	}
	// Cached: no second build, one more index read.
	n := len(cmd.calls)
	if k2, err := b.Get(ctx, spec, false); err != nil || k2.Dir != k.Dir {
		t.Fatalf("cached get: %v %v", k2.Dir, err)
	}
	if len(cmd.calls) != n+1 { // gpgv only
		t.Errorf("cached get ran %q", cmd.calls[n:])
	}
	// The mirror gone: the newest cached kernel of this fragment is used.
	b.Fetch = &fakeMirror{}
	if k3, err := b.Get(ctx, spec, false); err != nil || k3.Dir != k.Dir {
		t.Fatalf("offline get: %v %v", k3.Dir, err)
	}
	// A fragment whose settings Kconfig drops fails, naming them.
	b.Fetch = mir
	cmd.config = "CONFIG_NFS_LOCALIO=y\n"
	other := LocalIOKernel([]byte(testFragment + "CONFIG_VETH=y\n"))
	if _, err := b.Get(ctx, other, false); err == nil || !strings.Contains(err.Error(), "CONFIG_VETH=y") {
		t.Fatalf("dropped setting: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(b.CacheDir, "kernels", "*.tmp")); len(m) != 0 {
		t.Errorf("failed build left %q", m)
	}
}

func TestKernelBuilderRefusesABadSignatureOrIndex(t *testing.T) {
	mir, url := testKernelMirror(t)
	cmd := &fakeKernelCmd{gpgErr: errors.New("gpgv: BAD signature")}
	b := KernelBuilder{CacheDir: t.TempDir(), Mirror: url, Cmd: cmd, Fetch: mir, Clock: clock.Real{}}
	spec := LocalIOKernel([]byte(testFragment))
	if _, err := b.Resolve(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "BAD signature") {
		t.Fatalf("bad signature: %v", err)
	}
	cmd.gpgErr = nil
	mir.files[url+"/dists/trixie/main/binary-amd64/Packages.gz"] = []byte("tampered")
	if _, err := b.Resolve(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "signed index says") {
		t.Fatalf("tampered index: %v", err)
	}
}

func TestMachineWithoutInitrd(t *testing.T) {
	s := Session{Image: Image{Dir: "/c", Kernel: "vmlinuz", Initrd: "initrd.img"},
		Kernel: &Kernel{Dir: "/k", Image: "vmlinuz", Cmdline: []string{"ifb.numifbs=0"}}}
	m := s.machine("/w/ov", "/w/share", Accel{Name: "tcg", CPU: "max"})
	args := m.Args()
	if slices.Contains(args, "-initrd") || args[slices.Index(args, "-kernel")+1] != "/k/vmlinuz" ||
		!strings.HasSuffix(args[slices.Index(args, "-append")+1], "ifb.numifbs=0") {
		t.Errorf("args %q", args)
	}
	s.Kernel = nil
	if m := s.machine("/w/ov", "/w/share", Accel{Name: "tcg", CPU: "max"}); m.Initrd != "/c/initrd.img" || m.Kernel != "/c/vmlinuz" {
		t.Errorf("debian kernel %+v", m)
	}
}
