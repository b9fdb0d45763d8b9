package mount

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid marks bad mount options; callers map it to a usage error.
var ErrInvalid = errors.New("invalid mount options")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// DefaultNFSOptions are the options nfslab mounts with when none are given:
// the seed's soft mount, pinned to NFSv4.2 over TCP, with two
// retransmissions so that a full drop surfaces as EIO after about 6 s.
const DefaultNFSOptions = "vers=4.2,proto=tcp,port=2049,soft,timeo=10,retrans=2"

// Limits the kernel enforces or that make sense for a lab mount.
const (
	maxTimeo   = 6000    // tenths of a second: the kernel caps timeo at 600 s
	minIOSize  = 1024    // bytes
	maxIOSize  = 1 << 20 // bytes: NFS_MAX_FILE_IO_SIZE
	maxActimeo = 86400   // seconds
	maxRetrans = 65535
)

// NFSOptions is a typed NFS mount option set. The zero value means "kernel
// defaults" for every field.
type NFSOptions struct {
	// Vers is "3", "4", "4.0", "4.1" or "4.2" (vers= or nfsvers=).
	Vers string
	// Proto is "tcp" or "udp".
	Proto string
	// Port is the server's NFS port; 0 means the default (2049 for v4,
	// rpcbind for v3).
	Port int
	// Soft and Hard select the retry semantics; at most one may be set.
	Soft, Hard bool
	// Timeo is the RPC timeout in tenths of a second (timeo=10 is 1.0 s);
	// 0 means unset.
	Timeo int
	// Retrans is the number of retransmissions before a soft mount fails
	// (or a hard mount logs "server not responding"); nil means unset.
	Retrans *int
	// Actimeo sets all attribute cache timeouts, in seconds; nil means unset.
	Actimeo *int
	// Rsize and Wsize are the maximum read and write sizes in bytes; 0 means
	// negotiated.
	Rsize, Wsize int
	// Addr is the server's IP address. The kernel cannot resolve host
	// names, so nfslab fills it in (Resolve) unless the user gave it.
	Addr netip.Addr
	// ClientAddr is the local address the server calls back (NFSv4.0
	// delegations); nfslab fills it in for v4 from the route to Addr.
	ClientAddr netip.Addr
	// Flags are VFS mount flags given in the option string (ro, nosuid,
	// nodev, noexec, noatime, nodiratime, relatime, sync); they become
	// mount(2) flags, not data.
	Flags []string
	// Extra are other kernel NFS options passed through verbatim, each
	// "key" or "key=value", in the order given.
	Extra []string
}

// vfsFlags are options that are mount(2) flags rather than NFS data.
var vfsFlags = []string{"ro", "rw", "nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime", "sync"}

// knownExtra lists the kernel NFS options nfslab passes through unchanged.
// Anything else is refused, so a typo ("sotf") fails here with a message
// instead of in the kernel with a bare EINVAL.
var knownExtra = map[string]bool{
	"ac": true, "noac": true, "cto": true, "nocto": true, "lock": true, "nolock": true,
	"intr": true, "nointr": true, "sharecache": true, "nosharecache": true,
	"resvport": true, "noresvport": true, "fsc": true, "nofsc": true,
	"acl": true, "noacl": true, "rdirplus": true, "nordirplus": true,
	"softerr": true, "softreval": true, "nosoftreval": true, "posix": true, "noposix": true,
	"acregmin": true, "acregmax": true, "acdirmin": true, "acdirmax": true,
	"nconnect": true, "max_connect": true, "lookupcache": true, "local_lock": true,
	"sec": true, "minorversion": true, "mountport": true, "mountproto": true,
	"mountaddr": true, "mountvers": true, "namlen": true,
	"write": true, "xprtsec": true, "trunkdiscovery": true, "notrunkdiscovery": true,
	"migration": true, "nomigration": true,
}

// ParseNFSOptions parses a mount(8) style option string strictly: every
// element must be known, every number must parse, no key may repeat, and
// contradictions are refused. It does not apply defaults; call Validate (it
// is called here too) for range checks.
func ParseNFSOptions(s string) (NFSOptions, error) {
	var o NFSOptions
	if strings.TrimSpace(s) == "" {
		return o, invalid("empty option string")
	}
	seen := map[string]string{}
	for _, el := range strings.Split(s, ",") {
		el = strings.TrimSpace(el)
		if el == "" {
			return o, invalid("empty element in %q (doubled or trailing comma)", s)
		}
		key, val, hasVal := strings.Cut(el, "=")
		canon := key
		if key == "nfsvers" {
			canon = "vers"
		}
		if prev, dup := seen[canon]; dup {
			return o, invalid("option %q given twice (%q and %q)", canon, prev, el)
		}
		seen[canon] = el
		needVal := func() error {
			if !hasVal || val == "" {
				return invalid("option %q needs a value (%s=...)", key, key)
			}
			return nil
		}
		noVal := func() error {
			if hasVal {
				return invalid("option %q takes no value, got %q", key, el)
			}
			return nil
		}
		num := func() (int, error) {
			if err := needVal(); err != nil {
				return 0, err
			}
			n, err := strconv.Atoi(val)
			if err != nil {
				return 0, invalid("%s=%q is not a whole number", key, val)
			}
			return n, nil
		}
		var err error
		switch canon {
		case "vers":
			if err = needVal(); err == nil {
				o.Vers = val
			}
		case "proto":
			if err = needVal(); err == nil {
				o.Proto = val
			}
		case "port":
			// port=0 means "default", as for the kernel.
			o.Port, err = num()
		case "soft":
			err = noVal()
			o.Soft = true
		case "hard":
			err = noVal()
			o.Hard = true
		case "timeo":
			o.Timeo, err = num()
			if err == nil && o.Timeo == 0 {
				err = invalid("timeo=0 is 0.0 s: timeo is in tenths of a second and must be 1..%d (0.1 s..600 s)", maxTimeo)
			}
		case "retrans":
			var n int
			if n, err = num(); err == nil {
				o.Retrans = &n
			}
		case "actimeo":
			var n int
			if n, err = num(); err == nil {
				o.Actimeo = &n
			}
		case "rsize":
			o.Rsize, err = num()
		case "wsize":
			o.Wsize, err = num()
		case "addr", "clientaddr":
			if err = needVal(); err == nil {
				a, perr := netip.ParseAddr(val)
				if perr != nil {
					err = invalid("%s=%q is not an IP address (the kernel cannot resolve host names)", key, val)
				} else if canon == "addr" {
					o.Addr = a
				} else {
					o.ClientAddr = a
				}
			}
		default:
			if slices.Contains(vfsFlags, key) {
				if err = noVal(); err == nil {
					o.Flags = append(o.Flags, key)
				}
				break
			}
			if !knownExtra[key] {
				return o, invalid("unknown NFS option %q", el)
			}
			o.Extra = append(o.Extra, el)
		}
		if err != nil {
			return o, err
		}
	}
	if err := o.Validate(); err != nil {
		return o, err
	}
	return o, nil
}

// MajorVersion returns 3 or 4 (4 when Vers is unset, as for mount.nfs).
func (o NFSOptions) MajorVersion() int {
	if o.Vers == "3" {
		return 3
	}
	return 4
}

// FSType is the filesystem type for mount(2): "nfs" for v3, "nfs4" for v4.
func (o NFSOptions) FSType() string {
	if o.MajorVersion() == 3 {
		return "nfs"
	}
	return "nfs4"
}

func (o NFSOptions) proto() string {
	if o.Proto == "" {
		return "tcp"
	}
	return o.Proto
}

// Validate checks ranges and contradictions. Messages state the unit.
func (o NFSOptions) Validate() error {
	switch o.Vers {
	case "", "3", "4", "4.0", "4.1", "4.2":
	case "2":
		return invalid("vers=2: NFSv2 is not supported (use 3, 4, 4.0, 4.1 or 4.2)")
	default:
		return invalid("vers=%q is not one of 3, 4, 4.0, 4.1, 4.2", o.Vers)
	}
	switch o.Proto {
	case "", "tcp":
	case "udp":
		if o.MajorVersion() == 4 {
			return invalid("proto=udp with NFSv4 (vers=%s): NFSv4 runs over TCP only; use vers=3 for udp", cmp.Or(o.Vers, "4 by default"))
		}
	default:
		return invalid("proto=%q is not tcp or udp", o.Proto)
	}
	if o.Port < 0 || o.Port > 65535 {
		return invalid("port=%d is out of range 0..65535", o.Port)
	}
	if o.Soft && o.Hard {
		return invalid("soft and hard contradict each other: soft fails an RPC with EIO after retrans retries, hard retries forever; pick one")
	}
	if o.Timeo < 0 || o.Timeo > maxTimeo {
		return invalid("timeo=%d is %s: timeo is in tenths of a second and must be 1..%d (0.1 s..600 s)", o.Timeo, tenths(o.Timeo), maxTimeo)
	}
	if o.Retrans != nil && (*o.Retrans < 0 || *o.Retrans > maxRetrans) {
		return invalid("retrans=%d must be 0..%d retransmissions", *o.Retrans, maxRetrans)
	}
	if o.Actimeo != nil && (*o.Actimeo < 0 || *o.Actimeo > maxActimeo) {
		return invalid("actimeo=%d must be 0..%d seconds (0 disables attribute caching)", *o.Actimeo, maxActimeo)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"rsize", o.Rsize}, {"wsize", o.Wsize}} {
		if f.v == 0 {
			continue
		}
		if f.v < minIOSize || f.v > maxIOSize {
			return invalid("%s=%d bytes is out of range %d..%d bytes (1 KiB..1 MiB)", f.name, f.v, minIOSize, maxIOSize)
		}
		if f.v%1024 != 0 {
			return invalid("%s=%d bytes is not a multiple of 1024", f.name, f.v)
		}
	}
	if o.ClientAddr.IsValid() && o.MajorVersion() == 3 {
		return invalid("clientaddr=%s applies to NFSv4 only (vers=3 given)", o.ClientAddr)
	}
	if o.Addr.IsValid() && o.ClientAddr.IsValid() && o.Addr.Is4() != o.ClientAddr.Is4() {
		return invalid("addr=%s and clientaddr=%s are of different IP families", o.Addr, o.ClientAddr)
	}
	for _, f := range o.Flags {
		if !slices.Contains(vfsFlags, f) {
			return invalid("mount flag %q is not one of %s", f, strings.Join(vfsFlags, ", "))
		}
	}
	if slices.Contains(o.Flags, "ro") && slices.Contains(o.Flags, "rw") {
		return invalid("ro and rw contradict each other")
	}
	for _, e := range o.Extra {
		k, _, _ := strings.Cut(e, "=")
		if !knownExtra[k] {
			return invalid("unknown NFS option %q", e)
		}
	}
	return nil
}

func tenths(n int) string { return fmt.Sprintf("%.1f s", float64(n)/10) }

// Timeout returns the RPC timeout (timeo) as a duration, or 0 if unset.
func (o NFSOptions) Timeout() time.Duration { return time.Duration(o.Timeo) * 100 * time.Millisecond }

// GiveUpAfter estimates how long a soft mount retries one RPC before it
// fails with EIO: over TCP the timeout grows linearly (timeo, 2*timeo, ...),
// over UDP it doubles, for retrans+1 attempts. It returns 0 for hard mounts
// or when timeo or retrans is unset.
func (o NFSOptions) GiveUpAfter() time.Duration {
	if !o.Soft || o.Timeo == 0 || o.Retrans == nil {
		return 0
	}
	var total, step int
	for i := 0; i <= *o.Retrans; i++ {
		if o.proto() == "udp" {
			step = o.Timeo << i
		} else {
			step = o.Timeo * (i + 1)
		}
		total += min(step, maxTimeo)
	}
	return time.Duration(total) * 100 * time.Millisecond
}

// Describe explains the options in words, units included, for logs and
// `nfslab mount` output.
func (o NFSOptions) Describe() string {
	var parts []string
	parts = append(parts, "NFSv"+cmp.Or(o.Vers, "4 (highest the server offers)")+" over "+o.proto())
	if o.Port != 0 {
		parts = append(parts, fmt.Sprintf("port %d", o.Port))
	}
	if o.Timeo != 0 {
		parts = append(parts, fmt.Sprintf("timeo=%d is %s per RPC attempt", o.Timeo, tenths(o.Timeo)))
	}
	if o.Retrans != nil {
		parts = append(parts, fmt.Sprintf("retrans=%d retransmissions", *o.Retrans))
	}
	switch {
	case o.Soft && o.GiveUpAfter() > 0:
		parts = append(parts, fmt.Sprintf("soft: an RPC fails with EIO after about %s", o.GiveUpAfter()))
	case o.Soft:
		parts = append(parts, "soft: an RPC fails with EIO after its retries")
	default:
		parts = append(parts, "hard: RPCs retry forever (a dead server hangs callers)")
	}
	if o.Actimeo != nil {
		parts = append(parts, fmt.Sprintf("actimeo=%d s attribute cache", *o.Actimeo))
	}
	if o.Rsize != 0 {
		parts = append(parts, fmt.Sprintf("rsize=%d bytes", o.Rsize))
	}
	if o.Wsize != 0 {
		parts = append(parts, fmt.Sprintf("wsize=%d bytes", o.Wsize))
	}
	return strings.Join(parts, "; ")
}

// Data renders the elements of the kernel option string (the mount(2) data),
// without VFS flags, in a stable order.
func (o NFSOptions) Data() []string {
	var d []string
	if o.Vers != "" {
		d = append(d, "vers="+o.Vers)
	}
	if o.Proto != "" {
		d = append(d, "proto="+o.Proto)
	}
	if o.Port != 0 {
		d = append(d, "port="+strconv.Itoa(o.Port))
	}
	if o.Soft {
		d = append(d, "soft")
	}
	if o.Hard {
		d = append(d, "hard")
	}
	if o.Timeo != 0 {
		d = append(d, "timeo="+strconv.Itoa(o.Timeo))
	}
	if o.Retrans != nil {
		d = append(d, "retrans="+strconv.Itoa(*o.Retrans))
	}
	if o.Actimeo != nil {
		d = append(d, "actimeo="+strconv.Itoa(*o.Actimeo))
	}
	if o.Rsize != 0 {
		d = append(d, "rsize="+strconv.Itoa(o.Rsize))
	}
	if o.Wsize != 0 {
		d = append(d, "wsize="+strconv.Itoa(o.Wsize))
	}
	d = append(d, o.Extra...)
	if o.Addr.IsValid() {
		d = append(d, "addr="+o.Addr.String())
	}
	if o.ClientAddr.IsValid() && o.MajorVersion() == 4 {
		d = append(d, "clientaddr="+o.ClientAddr.String())
	}
	return d
}

// String renders the kernel option string, e.g.
// "vers=4.2,proto=tcp,port=2049,soft,timeo=10,retrans=2,addr=10.213.0.2,clientaddr=10.213.0.1".
func (o NFSOptions) String() string { return strings.Join(o.Data(), ",") }

// Elements returns VFS flags followed by the data elements: the options
// list a Mounter takes.
func (o NFSOptions) Elements() []string {
	return append(slices.Clone(o.Flags), o.Data()...)
}
