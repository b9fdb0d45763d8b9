package vm

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nfslab/nfslab/pkg/duration"
)

// Image is a built, cached base image.
type Image struct {
	Dir    string `json:"-"`
	Key    string `json:"key"`
	Kernel string `json:"kernel"` // file names inside Dir
	Initrd string `json:"initrd"`
	Disk   string `json:"disk"`
	// KernelRelease is the guest's uname -r.
	KernelRelease string            `json:"kernel_release"`
	Suite         string            `json:"suite"`
	Packages      []string          `json:"packages"`
	Mirror        string            `json:"mirror"`
	Built         time.Time         `json:"built"`
	BuildTime     duration.Duration `json:"build_time"`
	Phases        []PhaseTiming     `json:"phases"`
}

// PhaseTiming records how long a build phase took (for benchmarks).
type PhaseTiming struct {
	Name     string            `json:"name"`
	Duration duration.Duration `json:"duration"`
}

const manifestFile = "manifest.json"

// Path returns the absolute path of one of the image's files.
func (im Image) Path(name string) string { return filepath.Join(im.Dir, name) }

// LoadImage reads the manifest of a cached image and checks its files.
func LoadImage(dir string) (Image, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return Image{}, fmt.Errorf("reading image manifest: %w", err)
	}
	var im Image
	if err := json.Unmarshal(b, &im); err != nil {
		return Image{}, fmt.Errorf("decoding image manifest %s: %w", filepath.Join(dir, manifestFile), err)
	}
	im.Dir = dir
	for _, f := range []string{im.Kernel, im.Initrd, im.Disk} {
		if f == "" {
			return Image{}, fmt.Errorf("image manifest in %s names no file", dir)
		}
		if _, err := os.Stat(im.Path(f)); err != nil {
			return Image{}, fmt.Errorf("cached image incomplete: %w", err)
		}
	}
	return im, nil
}

func (im Image) save() error {
	b, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(im.Dir, manifestFile), append(b, '\n'), 0o644)
}

// CheckStatic refuses a dynamically linked nfslab: the guest's libc is not
// the host's. Build with CGO_ENABLED=0.
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %s is not an ELF executable: %v", ErrInvalid, path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: %s is dynamically linked; rebuild with CGO_ENABLED=0 so it runs in the guest", ErrInvalid, path)
		}
	}
	return nil
}
