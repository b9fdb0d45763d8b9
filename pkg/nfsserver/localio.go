package nfsserver

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// LocalIOParam is the NFS client's LOCALIO switch (Linux >= 6.12, nfs
// module loaded).
const LocalIOParam = "/sys/module/nfs/parameters/localio_enabled"

// LocalIOFix is the exact command that turns LOCALIO off; it must run
// before the mount is made.
const LocalIOFix = "echo N > " + LocalIOParam

// LocalIOState is what the kernel says about LOCALIO.
type LocalIOState string

const (
	LocalIOAbsent   LocalIOState = "absent"   // no parameter: kernel < 6.12 or nfs not loaded
	LocalIOEnabled  LocalIOState = "enabled"  // Y: a local client bypasses the network
	LocalIODisabled LocalIOState = "disabled" // N
)

// LocalIO reads the LOCALIO parameter.
func LocalIO(h Host) (LocalIOState, error) {
	b, err := h.ReadFile(LocalIOParam)
	if errors.Is(err, fs.ErrNotExist) {
		return LocalIOAbsent, nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", LocalIOParam, err)
	}
	switch strings.TrimSpace(string(b)) {
	case "Y", "y", "1":
		return LocalIOEnabled, nil
	case "N", "n", "0":
		return LocalIODisabled, nil
	default:
		return "", fmt.Errorf("reading %s: unexpected value %q", LocalIOParam, strings.TrimSpace(string(b)))
	}
}

// RequireNoLocalIO refuses (ErrLocalIO, with the fix) while LOCALIO is on,
// because then packets to a local knfsd never cross the faults. With
// apply, it turns LOCALIO off instead and checks that the kernel took it.
func RequireNoLocalIO(h Host, apply bool) error {
	st, err := LocalIO(h)
	if err != nil || st != LocalIOEnabled {
		return err
	}
	if !apply {
		return fmt.Errorf("%w: a client mounting a knfsd on this host would bypass the network, so no network fault would bite; "+
			"run `%s` before mounting (or pass --disable-localio to let nfslab do it)", ErrLocalIO, LocalIOFix)
	}
	if err := h.WriteFile(LocalIOParam, []byte("N")); err != nil {
		return fmt.Errorf("turning NFS LOCALIO off (%s): %w", LocalIOFix, err)
	}
	if st, err := LocalIO(h); err != nil || st != LocalIODisabled {
		return fmt.Errorf("%w: still %s after writing N to %s (%v)", ErrLocalIO, st, LocalIOParam, err)
	}
	return nil
}

// GuardLocalIO is RequireNoLocalIO for a client mount whose server may or
// may not be on this host. LOCALIO can only bypass the network when this
// kernel runs knfsd (in any namespace), so without nfsd it passes.
func GuardLocalIO(h Host, apply bool) error {
	if !hasNFSD(h) {
		return nil
	}
	return RequireNoLocalIO(h, apply)
}
