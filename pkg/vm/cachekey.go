package vm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// imageFormat changes whenever the build steps change in a way that makes
// older cached images unusable.
const imageFormat = "nfslab-vm-image/1"

// Key is the cache key of an image: a hash over the build format, the suite,
// the sorted package list, the disk size and the guest init's content. The
// mirror is deliberately left out: any mirror of the suite gives the same
// image, and a laptop and CI should share cache semantics.
func (s ImageSpec) Key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nsuite=%s\ndisk=%d\n", imageFormat, s.Suite, s.DiskSizeMB)
	fmt.Fprintf(h, "packages=%s\n", strings.Join(s.sortedPackages(), ","))
	init := sha256.Sum256(s.GuestInit)
	fmt.Fprintf(h, "init=%x\n", init)
	if s.Flavour != "" { // only then: the lab image keeps its key
		fmt.Fprintf(h, "flavour=%s\n", s.Flavour)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
