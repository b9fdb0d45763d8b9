package nfsserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// ExternalConfig names a server nfslab does not run.
type ExternalConfig struct {
	// Addr is the server's IP address or host name.
	Addr string `json:"addr"`
	// Port is the NFS port; 0 means 2049.
	Port int `json:"port"`
	// Export is the exported path ("/" for an NFSv4 pseudo root).
	Export string `json:"export"`
	// DialTimeout bounds the reachability check; 0 means 3 s.
	DialTimeout time.Duration `json:"dial_timeout"`
	// DisableLocalIO turns LOCALIO off when the server is local instead of
	// refusing.
	DisableLocalIO bool `json:"disable_localio"`
}

// Validate names the bad value.
func (c ExternalConfig) Validate() error {
	if c.Addr == "" || strings.ContainsAny(c.Addr, " /,") {
		return invalid("server address %q is empty or malformed", c.Addr)
	}
	if c.Port < 0 || c.Port > 65535 {
		return invalid("port %d is out of range 1..65535", c.Port)
	}
	if !strings.HasPrefix(c.Export, "/") {
		return invalid("export %q must be an absolute path (\"/\" for the NFSv4 root)", c.Export)
	}
	return nil
}

// External is a server given by the user. Start checks that it answers;
// Stop does nothing, because nfslab did not start it.
type External struct {
	cfg  ExternalConfig
	host Host
}

// NewExternal validates cfg.
func NewExternal(cfg ExternalConfig, h Host) (*External, error) {
	if cfg.Port == 0 {
		cfg.Port = NFSPort
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 3 * time.Second
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &External{cfg: cfg, host: h}, nil
}

func (e *External) Kind() string { return KindExternal }

// Start resolves the address, refuses a local server while LOCALIO is on,
// and checks with one bounded TCP connect that the port answers.
func (e *External) Start(ctx context.Context) (Endpoint, error) {
	addr, err := netip.ParseAddr(e.cfg.Addr)
	if err != nil {
		ips, rerr := net.DefaultResolver.LookupNetIP(ctx, "ip4", e.cfg.Addr)
		if rerr != nil || len(ips) == 0 {
			return Endpoint{}, fmt.Errorf("resolving NFS server %q: %w", e.cfg.Addr, rerr)
		}
		addr = ips[0]
	}
	addr = addr.Unmap()
	local, err := e.isLocal(addr)
	if err != nil {
		return Endpoint{}, err
	}
	if local {
		// A knfsd on this host: the seed's first set-up, where faults on
		// the path matched nothing. LOCALIO makes it worse on >= 6.12.
		if err := RequireNoLocalIO(e.host, e.cfg.DisableLocalIO); err != nil {
			return Endpoint{}, fmt.Errorf("server %s is on this host: %w", addr, err)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer cancel()
	ap := netip.AddrPortFrom(addr, uint16(e.cfg.Port))
	if err := dialCheck(dctx, e.host, ap); err != nil {
		return Endpoint{}, err
	}
	return Endpoint{Addr: addr, Port: e.cfg.Port, Export: e.cfg.Export}, nil
}

func (e *External) isLocal(a netip.Addr) (bool, error) {
	if a.IsLoopback() {
		return true, nil
	}
	addrs, err := e.host.LocalAddrs()
	if err != nil {
		return false, fmt.Errorf("listing local addresses: %w", err)
	}
	for _, l := range addrs {
		if l == a {
			return true, nil
		}
	}
	return false, nil
}

// Stop does nothing: the server is not nfslab's.
func (e *External) Stop(context.Context) error { return nil }
