package vm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/nfslab/nfslab/pkg/duration"
)

// kernelFormat changes whenever the kernel build steps change in a way
// that makes older cached kernels unusable.
const kernelFormat = "nfslab-vm-kernel/1"

// Kernel flavours of the lab VM (vm run --kernel).
const (
	// KernelDebian is the image's own kernel (linux-image-amd64 with its
	// initrd): no LOCALIO.
	KernelDebian = "debian"
	// KernelLocalIO is built by nfslab from Debian's linux-source with
	// CONFIG_NFS_LOCALIO=y (nfslab vm kernel).
	KernelLocalIO = "localio"
)

// KernelSpec is a guest kernel built from a Debian linux-source package
// with a config fragment applied on top of `make allnoconfig`.
type KernelSpec struct {
	Name string // flavour, e.g. "localio"
	// Suite and Package name the source: trixie's linux-source-6.12 is the
	// first Debian kernel with LOCALIO (6.12).
	Suite   string
	Package string
	// Fragment is the KCONFIG_ALLCONFIG file; every CONFIG_ assignment in
	// it must be in the resulting .config.
	Fragment []byte
	// Cmdline is appended to the guest's kernel command line.
	Cmdline []string
}

// LocalIOKernel is the LOCALIO kernel's spec for a fragment (vmassets).
func LocalIOKernel(fragment []byte) KernelSpec {
	return KernelSpec{Name: KernelLocalIO, Suite: "trixie", Package: "linux-source-6.12", Fragment: fragment,
		// ifb is built in: without this it makes ifb0 and ifb1 at boot
		// (what the agent's `modprobe ifb numifbs=0` avoids on Debian's).
		Cmdline: []string{"ifb.numifbs=0"}}
}

// Validate checks the spec before anything is fetched.
func (s KernelSpec) Validate() error {
	if s.Name == "" || strings.ContainsAny(s.Name, "/ \t") {
		return fmt.Errorf("%w: kernel flavour %q", ErrInvalid, s.Name)
	}
	if s.Suite == "" || strings.ContainsAny(s.Suite, "/ \t") {
		return fmt.Errorf("%w: kernel source suite %q", ErrInvalid, s.Suite)
	}
	if !strings.HasPrefix(s.Package, "linux-source-") {
		return fmt.Errorf("%w: kernel source package %q is not a linux-source-* package", ErrInvalid, s.Package)
	}
	if len(FragmentSettings(s.Fragment)) == 0 {
		return fmt.Errorf("%w: kernel config fragment sets nothing", ErrInvalid)
	}
	return nil
}

// Key is the cache key of the kernel built from source version: a hash
// of the build format, the source package and version, and the fragment.
func (s KernelSpec) Key(version string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nname=%s\npackage=%s\nversion=%s\n", kernelFormat, s.Name, s.Package, version)
	frag := sha256.Sum256(s.Fragment)
	fmt.Fprintf(h, "fragment=%x\n", frag)
	return s.Name + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// FragmentHash identifies the fragment in a kernel manifest, so a cached
// kernel can be found without the mirror (its version unknown).
func (s KernelSpec) FragmentHash() string {
	h := sha256.Sum256(s.Fragment)
	return hex.EncodeToString(h[:8])
}

// FragmentSettings returns the fragment's CONFIG_ assignment lines.
func FragmentSettings(fragment []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(fragment))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "CONFIG_") && strings.Contains(l, "=") {
			out = append(out, l)
		}
	}
	return out
}

// MissingSettings returns the fragment's settings that the resolved
// .config does not have: a symbol whose dependencies are off is silently
// dropped by Kconfig, and would leave the feature out of the kernel.
func MissingSettings(fragment, config []byte) []string {
	have := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(config))
	for sc.Scan() {
		have[strings.TrimSpace(sc.Text())] = true
	}
	var miss []string
	for _, s := range FragmentSettings(fragment) {
		if !have[s] {
			miss = append(miss, s)
		}
	}
	return miss
}

// SourcePackage is a kernel source .deb as the mirror's index lists it.
type SourcePackage struct {
	Package  string `json:"package"`
	Version  string `json:"version"`
	Filename string `json:"filename"` // pool path below the mirror
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
}

// Base is the .deb's file name.
func (p SourcePackage) Base() string { return path.Base(p.Filename) }

// ReleaseHash returns the SHA256 and size an InRelease file lists for an
// index path (e.g. main/binary-amd64/Packages.gz). Its signature must have
// been checked before (gpgv).
func ReleaseHash(inRelease []byte, index string) (string, int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(inRelease))
	in := false
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "SHA256:"):
			in = true
			continue
		case in && !strings.HasPrefix(l, " "):
			in = false
		}
		if !in {
			continue
		}
		f := strings.Fields(l)
		if len(f) == 3 && f[2] == index {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return "", 0, fmt.Errorf("InRelease: size %q of %s: %w", f[1], index, err)
			}
			return f[0], n, nil
		}
	}
	return "", 0, fmt.Errorf("InRelease lists no SHA256 for %s", index)
}

// FindPackage returns the stanza of pkg in a Packages index (the highest
// version when the index lists several).
func FindPackage(index []byte, pkg string) (SourcePackage, error) {
	var best SourcePackage
	var cur SourcePackage
	flush := func() {
		if cur.Package == pkg && cur.Filename != "" && (best.Version == "" || versionLess(best.Version, cur.Version)) {
			best = cur
		}
		cur = SourcePackage{}
	}
	sc := bufio.NewScanner(bytes.NewReader(index))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			continue
		}
		switch k {
		case "Package":
			cur.Package = v
		case "Version":
			cur.Version = v
		case "Filename":
			cur.Filename = v
		case "SHA256":
			cur.SHA256 = v
		case "Size":
			cur.Size, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	flush()
	if best.Package == "" {
		return SourcePackage{}, fmt.Errorf("the mirror's index has no package %s", pkg)
	}
	if len(best.SHA256) != 64 || strings.Contains(best.Filename, "..") {
		return SourcePackage{}, fmt.Errorf("index entry of %s %s is incomplete (Filename %q, SHA256 %q)", pkg, best.Version, best.Filename, best.SHA256)
	}
	return best, nil
}

// versionLess orders Debian versions well enough for one package's
// entries in one index (numeric runs compared as numbers).
func versionLess(a, b string) bool {
	for a != "" || b != "" {
		na, ra := leadingNum(a)
		nb, rb := leadingNum(b)
		if na != nb {
			return na < nb
		}
		a, b = ra, rb
		if a == "" || b == "" {
			return a == "" && b != ""
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return false
}

func leadingNum(s string) (int, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, _ := strconv.Atoi(s[:i])
	return n, s[i:]
}

// Kernel is a built, cached guest kernel.
type Kernel struct {
	Dir          string            `json:"-"`
	Key          string            `json:"key"`
	Name         string            `json:"name"`
	Source       SourcePackage     `json:"source"`
	FragmentHash string            `json:"fragment_hash"`
	Release      string            `json:"release"` // uname -r
	Image        string            `json:"image"`   // file name inside Dir (bzImage)
	Config       string            `json:"config"`  // the resolved .config
	Cmdline      []string          `json:"cmdline,omitempty"`
	Jobs         int               `json:"jobs"`
	Built        time.Time         `json:"built"`
	BuildTime    duration.Duration `json:"build_time"`
	Phases       []PhaseTiming     `json:"phases"`
}

// Path returns the absolute path of one of the kernel's files.
func (k Kernel) Path(name string) string { return path.Join(k.Dir, name) }
