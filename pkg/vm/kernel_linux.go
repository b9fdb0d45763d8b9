package vm

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/duration"
)

// DebianKeyring verifies the mirror's InRelease (as debootstrap does).
const DebianKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// KernelTools are the programs a kernel build needs (scripts/setup
// installs them); the compiler's own dependencies (libelf-dev, libssl-dev)
// show as make errors.
var KernelTools = []string{"gpgv", "dpkg-deb", "tar", "xz", "make", "gcc", "bison", "flex", "bc", "nice"}

// Fetcher downloads url into the file dst.
type Fetcher interface {
	Fetch(ctx context.Context, url, dst string) error
}

// HTTPFetcher is the real Fetcher.
type HTTPFetcher struct{ Client *http.Client }

// Fetch GETs url into dst (written as dst.part, renamed when complete).
func (f HTTPFetcher) Fetch(ctx context.Context, url, dst string) error {
	c := f.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Minute}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching %s: %s", url, resp.Status)
	}
	out, err := os.Create(dst + ".part")
	if err != nil {
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	return os.Rename(dst+".part", dst)
}

// KernelBuilder builds guest kernels from Debian's kernel source into
// CacheDir/kernels/<key>/ (vmlinuz, config, manifest.json). The source
// .deb stays in CacheDir/kernels/src, so a fragment change downloads
// nothing. make runs under `nice -n 19`: the build shares the machine.
type KernelBuilder struct {
	CacheDir string
	Mirror   string
	Cmd      Commander
	Fetch    Fetcher
	Clock    clock.Clock
	Log      *slog.Logger
	// Jobs is make's -j (default: the number of CPUs).
	Jobs int
	// Keyring verifies InRelease (default DebianKeyring).
	Keyring string
	// Tools, when set, checks the build's programs before a build (the
	// command passes CheckTools; tests leave it nil).
	Tools func(names ...string) error
}

func (b KernelBuilder) dir() string { return filepath.Join(b.CacheDir, "kernels") }

func (b KernelBuilder) jobs() int {
	if b.Jobs > 0 {
		return b.Jobs
	}
	return runtime.NumCPU()
}

// Resolve reads the suite's signed index on the mirror and returns the
// source package's current version and .deb.
func (b KernelBuilder) Resolve(ctx context.Context, spec KernelSpec) (SourcePackage, error) {
	idx := filepath.Join(b.dir(), "index")
	if err := os.MkdirAll(idx, 0o755); err != nil {
		return SourcePackage{}, fmt.Errorf("creating %s: %w", idx, err)
	}
	base := strings.TrimRight(b.Mirror, "/") + "/dists/" + spec.Suite + "/"
	rel := filepath.Join(idx, spec.Suite+"-InRelease")
	if err := b.Fetch.Fetch(ctx, base+"InRelease", rel); err != nil {
		return SourcePackage{}, err
	}
	keyring := b.Keyring
	if keyring == "" {
		keyring = DebianKeyring
	}
	if err := b.Cmd.Run(ctx, "gpgv", "--keyring", keyring, rel); err != nil {
		return SourcePackage{}, fmt.Errorf("verifying %sInRelease: %w", base, err)
	}
	inRelease, err := os.ReadFile(rel)
	if err != nil {
		return SourcePackage{}, err
	}
	// The amd64 index lists the arch:all source packages too, and it is
	// the one apt and debootstrap read: on this project's mirror the
	// binary-all index did not match the signed InRelease, amd64's did.
	const index = "main/binary-amd64/Packages.gz"
	sum, size, err := ReleaseHash(inRelease, index)
	if err != nil {
		return SourcePackage{}, err
	}
	pk := filepath.Join(idx, spec.Suite+"-Packages.gz")
	if err := b.Fetch.Fetch(ctx, base+index, pk); err != nil {
		return SourcePackage{}, err
	}
	if err := checkSHA256(pk, sum, size); err != nil {
		return SourcePackage{}, err
	}
	f, err := os.Open(pk)
	if err != nil {
		return SourcePackage{}, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return SourcePackage{}, fmt.Errorf("reading %s: %w", pk, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return SourcePackage{}, fmt.Errorf("reading %s: %w", pk, err)
	}
	return FindPackage(data, spec.Package)
}

// checkSHA256 compares a file with the hash and size its index lists.
func checkSHA256(file, want string, size int64) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("hashing %s: %w", file, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want || (size > 0 && n != size) {
		return fmt.Errorf("%s: sha256 %s, %d bytes; the signed index says %s, %d bytes", file, got, n, want, size)
	}
	return nil
}

// LoadKernel reads a cached kernel's manifest and checks its files.
func LoadKernel(dir string) (Kernel, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return Kernel{}, fmt.Errorf("reading kernel manifest: %w", err)
	}
	var k Kernel
	if err := json.Unmarshal(b, &k); err != nil {
		return Kernel{}, fmt.Errorf("decoding kernel manifest in %s: %w", dir, err)
	}
	k.Dir = dir
	if k.Image == "" {
		return Kernel{}, fmt.Errorf("kernel manifest in %s names no image", dir)
	}
	if _, err := os.Stat(k.Path(k.Image)); err != nil {
		return Kernel{}, fmt.Errorf("cached kernel incomplete: %w", err)
	}
	return k, nil
}

// Newest returns the most recently built cached kernel of spec's flavour
// and fragment, whatever its source version: the fallback when the
// mirror cannot be asked for the current version.
func (b KernelBuilder) Newest(spec KernelSpec) (Kernel, bool) {
	m, _ := filepath.Glob(filepath.Join(b.dir(), spec.Name+"-*"))
	var ks []Kernel
	for _, d := range m {
		if strings.HasSuffix(d, ".tmp") {
			continue
		}
		if k, err := LoadKernel(d); err == nil && k.Name == spec.Name && k.FragmentHash == spec.FragmentHash() {
			ks = append(ks, k)
		}
	}
	if len(ks) == 0 {
		return Kernel{}, false
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].Built.After(ks[j].Built) })
	return ks[0], true
}

// Get returns the kernel for spec built from the mirror's current source
// version, building it when it is not cached (or when force is set). When
// the mirror cannot be read it falls back to the newest cached kernel of
// the same fragment, and says so.
func (b KernelBuilder) Get(ctx context.Context, spec KernelSpec, force bool) (Kernel, error) {
	if err := spec.Validate(); err != nil {
		return Kernel{}, err
	}
	if b.Log == nil {
		b.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(b.dir(), 0o755); err != nil {
		return Kernel{}, fmt.Errorf("creating kernel cache: %w", err)
	}
	unlock, err := lockDir(ctx, b.dir(), b.Clock)
	if err != nil {
		return Kernel{}, err
	}
	defer unlock()
	start := b.Clock.Now()
	src, err := b.Resolve(ctx, spec)
	if err != nil {
		if k, ok := b.Newest(spec); ok && !force {
			b.Log.Warn("vm kernel: cannot read the mirror's index; using the newest cached kernel", "err", err, "dir", k.Dir, "source", k.Source.Version)
			return k, nil
		}
		return Kernel{}, fmt.Errorf("finding %s in %s's index on %s: %w", spec.Package, spec.Suite, b.Mirror, err)
	}
	final := filepath.Join(b.dir(), spec.Key(src.Version))
	if !force {
		if k, err := LoadKernel(final); err == nil {
			b.Log.Info("using cached vm kernel", "dir", k.Dir, "release", k.Release)
			return k, nil
		}
	}
	if b.Tools != nil {
		if err := b.Tools(KernelTools...); err != nil {
			return Kernel{}, fmt.Errorf("%w (scripts/setup installs the kernel build's)", err)
		}
	}
	return b.build(ctx, spec, src, final, start)
}

func (b KernelBuilder) build(ctx context.Context, spec KernelSpec, src SourcePackage, final string, start time.Time) (Kernel, error) {
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return Kernel{}, fmt.Errorf("removing stale kernel build dir: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return Kernel{}, fmt.Errorf("creating kernel build dir: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(tmp)
		}
	}()
	k := Kernel{Dir: tmp, Key: filepath.Base(final), Name: spec.Name, Source: src, FragmentHash: spec.FragmentHash(),
		Image: "vmlinuz", Config: "config", Cmdline: spec.Cmdline, Jobs: b.jobs()}
	srcDir := filepath.Join(b.dir(), "src")
	deb := filepath.Join(srcDir, src.Base())
	unpacked := filepath.Join(tmp, "deb")
	tree := filepath.Join(tmp, "src")
	out := filepath.Join(tmp, "build")
	frag := filepath.Join(tmp, "fragment.config")
	nice := func(args ...string) error { return b.Cmd.Run(ctx, "nice", append([]string{"-n", "19"}, args...)...) }
	steps := []struct {
		name string
		f    func() error
	}{
		{"fetch", func() error {
			if checkSHA256(deb, src.SHA256, src.Size) == nil {
				return nil
			}
			if err := os.MkdirAll(srcDir, 0o755); err != nil {
				return err
			}
			if err := b.Fetch.Fetch(ctx, strings.TrimRight(b.Mirror, "/")+"/"+src.Filename, deb); err != nil {
				return err
			}
			return checkSHA256(deb, src.SHA256, src.Size)
		}},
		{"unpack", func() error {
			if err := b.Cmd.Run(ctx, "dpkg-deb", "-x", deb, unpacked); err != nil {
				return err
			}
			if err := os.MkdirAll(tree, 0o755); err != nil {
				return err
			}
			tarball := filepath.Join(unpacked, "usr", "src", spec.Package+".tar.xz")
			if err := nice("tar", "-C", tree, "--strip-components=1", "-xJf", tarball); err != nil {
				return err
			}
			return os.RemoveAll(unpacked)
		}},
		{"configure", func() error {
			if err := os.WriteFile(frag, spec.Fragment, 0o644); err != nil {
				return err
			}
			if err := nice("make", "-s", "-C", tree, "O="+out, "KCONFIG_ALLCONFIG="+frag, "allnoconfig"); err != nil {
				return err
			}
			cfg, err := os.ReadFile(filepath.Join(out, ".config"))
			if err != nil {
				return err
			}
			if miss := MissingSettings(spec.Fragment, cfg); len(miss) > 0 {
				return fmt.Errorf("%w: the kernel config dropped %s (a dependency is off: add it to the fragment)", ErrInvalid, strings.Join(miss, ", "))
			}
			return copyFile(filepath.Join(out, ".config"), filepath.Join(tmp, k.Config))
		}},
		{"compile", func() error {
			return nice("make", "-s", "-C", tree, "O="+out, "-j"+strconv.Itoa(k.Jobs), "bzImage")
		}},
		{"install", func() error {
			rel, err := os.ReadFile(filepath.Join(out, "include", "config", "kernel.release"))
			if err != nil {
				return fmt.Errorf("reading the kernel release: %w", err)
			}
			k.Release = strings.TrimSpace(string(rel))
			if err := copyFile(filepath.Join(out, "arch", "x86", "boot", "bzImage"), filepath.Join(tmp, k.Image)); err != nil {
				return err
			}
			for _, d := range []string{tree, out} {
				if err := os.RemoveAll(d); err != nil {
					return fmt.Errorf("removing %s: %w", d, err)
				}
			}
			return nil
		}},
	}
	for _, s := range steps {
		t := b.Clock.Now()
		b.Log.Info("vm kernel: "+s.name, "dir", tmp, "source", src.Package+" "+src.Version)
		if err := s.f(); err != nil {
			return Kernel{}, fmt.Errorf("building vm kernel (%s): %w", s.name, err)
		}
		k.Phases = append(k.Phases, PhaseTiming{Name: s.name, Duration: duration.Duration(b.Clock.Now().Sub(t))})
	}
	k.Built = b.Clock.Now().UTC()
	k.BuildTime = duration.Duration(k.Built.Sub(start))
	mb, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return Kernel{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, manifestFile), append(mb, '\n'), 0o644); err != nil {
		return Kernel{}, fmt.Errorf("writing kernel manifest: %w", err)
	}
	if err := os.RemoveAll(final); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Kernel{}, fmt.Errorf("replacing old kernel: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return Kernel{}, fmt.Errorf("publishing kernel: %w", err)
	}
	ok = true
	k.Dir = final
	b.Log.Info("vm kernel built", "dir", final, "release", k.Release, "took", k.BuildTime.D().Round(time.Second))
	return k, nil
}
