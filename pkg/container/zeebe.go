package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/nfslab/nfslab/pkg/clock"
)

// Zeebe defaults, as in the June 2025 NFS workshop.
const (
	DefaultZeebeImage  = "gcr.io/zeebe-io/zeebe:8.7.5-root"
	DefaultZeebeName   = "nfslab-zeebe"
	ZeebeDataDir       = "/usr/local/zeebe/data"
	ZeebeWorkDir       = "/usr/local/zeebe"
	ZeebeGatewayPort   = 26500
	ZeebeMonitorPort   = 9600
	zeebeReadinessPath = "/actuator/health/readiness"
)

// ZeebeSpec is a single Zeebe broker (with embedded gateway) whose data
// directory lives on the storage under test.
type ZeebeSpec struct {
	Name  string // default DefaultZeebeName
	Image string // default DefaultZeebeImage; e.g. camunda/zeebe:8.7.5
	// DataDir is the host directory (an NFS mount or a faultfs mountpoint)
	// bind-mounted at /usr/local/zeebe/data.
	DataDir string
	// HostIP is where the ports are published; default 127.0.0.1 so the
	// broker is not reachable from other machines.
	HostIP string
	// GatewayPort and MonitorPort are the host ports for 26500 and 9600;
	// 0 means the same number.
	GatewayPort, MonitorPort int
	// The seed's tuning; zero values leave Zeebe's defaults.
	LogSegmentSize string // ZEEBE_BROKER_DATA_LOGSEGMENTSIZE, e.g. 16MB
	SnapshotPeriod string // ZEEBE_BROKER_DATA_SNAPSHOTPERIOD, e.g. 8h
	CPUThreads     int    // ZEEBE_BROKER_THREADS_CPUTHREADCOUNT
	IOThreads      int    // ZEEBE_BROKER_THREADS_IOTHREADCOUNT
	// Env adds or overrides environment variables.
	Env map[string]string
	// Network is bridge (default, ports published) or host (ports are the
	// broker's own, nothing published; no firewall rules are added).
	Network string
	RunID   string
	Labels  map[string]string
}

// WithDefaults fills unset fields.
func (z ZeebeSpec) WithDefaults() ZeebeSpec {
	if z.Name == "" {
		z.Name = DefaultZeebeName
	}
	if z.Image == "" {
		z.Image = DefaultZeebeImage
	}
	if z.HostIP == "" {
		z.HostIP = "127.0.0.1"
	}
	if z.GatewayPort == 0 {
		z.GatewayPort = ZeebeGatewayPort
	}
	if z.MonitorPort == 0 {
		z.MonitorPort = ZeebeMonitorPort
	}
	return z
}

var (
	sizeRE     = regexp.MustCompile(`^[1-9][0-9]*(KB|MB|GB)$`)
	durationRE = regexp.MustCompile(`^[1-9][0-9]*(ms|s|m|h|d)$`)
)

// Validate names the first bad value.
func (z ZeebeSpec) Validate() error {
	if z.DataDir == "" || !filepath.IsAbs(z.DataDir) {
		return fmt.Errorf("zeebe data directory %q must be an absolute host path (an NFS mount or faultfs mountpoint)", z.DataDir)
	}
	if z.LogSegmentSize != "" && !sizeRE.MatchString(z.LogSegmentSize) {
		return fmt.Errorf("log segment size %q is not a size such as 16MB (KB, MB or GB)", z.LogSegmentSize)
	}
	if z.SnapshotPeriod != "" && !durationRE.MatchString(z.SnapshotPeriod) {
		return fmt.Errorf("snapshot period %q is not a duration such as 8h (ms, s, m, h or d)", z.SnapshotPeriod)
	}
	for _, t := range []struct {
		what string
		n    int
	}{{"cpu thread count", z.CPUThreads}, {"io thread count", z.IOThreads}} {
		if t.n < 0 || t.n > 256 {
			return fmt.Errorf("%s %d is out of range 1..256", t.what, t.n)
		}
	}
	for _, p := range []int{z.GatewayPort, z.MonitorPort} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("port %d is out of range 1..65535", p)
		}
	}
	if z.Network != "" && z.Network != NetworkBridge && z.Network != NetworkHost {
		return fmt.Errorf("zeebe network %q is not bridge or host", z.Network)
	}
	return z.ContainerSpec().Validate()
}

// ContainerSpec is the container the broker runs in. Equivalent to:
//
//	podman run -d -v DATA:/usr/local/zeebe/data -p 127.0.0.1:26500:26500 \
//	  -p 127.0.0.1:9600:9600 -e ZEEBE_BROKER_DATA_LOGSEGMENTSIZE=16MB ... IMAGE
func (z ZeebeSpec) ContainerSpec() Spec {
	env := map[string]string{}
	set := func(k, v string) {
		if v != "" && v != "0" {
			env[k] = v
		}
	}
	set("ZEEBE_BROKER_DATA_LOGSEGMENTSIZE", z.LogSegmentSize)
	set("ZEEBE_BROKER_DATA_SNAPSHOTPERIOD", z.SnapshotPeriod)
	set("ZEEBE_BROKER_THREADS_CPUTHREADCOUNT", strconv.Itoa(z.CPUThreads))
	set("ZEEBE_BROKER_THREADS_IOTHREADCOUNT", strconv.Itoa(z.IOThreads))
	for k, v := range z.Env {
		env[k] = v
	}
	s := Spec{
		Name:    z.Name,
		Image:   z.Image,
		Env:     env,
		Labels:  OwnedLabels(z.RunID, RoleZeebe, z.Labels),
		Mounts:  []Mount{{Source: z.DataDir, Target: ZeebeDataDir}},
		Network: z.Network,
	}
	if z.Network != NetworkHost {
		s.Ports = []Port{
			{HostIP: z.HostIP, HostPort: uint16(z.GatewayPort), ContainerPort: ZeebeGatewayPort},
			{HostIP: z.HostIP, HostPort: uint16(z.MonitorPort), ContainerPort: ZeebeMonitorPort},
		}
	}
	return s
}

// ReadinessURL is the broker's readiness endpoint as seen from the host.
func (z ZeebeSpec) ReadinessURL() string {
	z = z.WithDefaults()
	host, port := z.HostIP, z.MonitorPort
	if z.Network == NetworkHost {
		host, port = "127.0.0.1", ZeebeMonitorPort
	}
	return fmt.Sprintf("http://%s%s", netJoin(host, port), zeebeReadinessPath)
}

func netJoin(host string, port int) string {
	if bytes.ContainsRune([]byte(host), ':') {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}

// ErrNotReady is returned when readiness was not reached in time.
var ErrNotReady = errors.New("not ready")

// Prober answers whether url reports ready (HTTP 200).
type Prober func(ctx context.Context, url string) (bool, error)

// HTTPProber probes with a short per-request timeout.
func HTTPProber(client *http.Client) Prober {
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	return func(ctx context.Context, url string) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}
}

// ReadyOptions bound WaitReady.
type ReadyOptions struct {
	Timeout  time.Duration // total; 0 means 2 minutes
	Interval time.Duration // between probes; 0 means 1 s
	Clock    clock.Clock   // nil means the real clock
	Probe    Prober        // nil means HTTPProber(nil)
	// Alive, if set, is checked between probes so that a broker that
	// crashed during start-up fails the wait at once, not at the timeout.
	Alive func(ctx context.Context) error
}

// WaitReady polls url until it answers 200, the timeout passes, ctx ends
// or Alive reports an error. The error carries the last probe failure.
func WaitReady(ctx context.Context, url string, o ReadyOptions) error {
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Interval == 0 {
		o.Interval = time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Probe == nil {
		o.Probe = HTTPProber(nil)
	}
	deadline := o.Clock.Now().Add(o.Timeout)
	var last error
	for attempt := 1; ; attempt++ {
		ok, err := o.Probe(ctx, url)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = errors.New("readiness endpoint answered but not with 200")
		}
		if o.Alive != nil {
			if err := o.Alive(ctx); err != nil {
				return fmt.Errorf("waiting for %s: %w", url, err)
			}
		}
		if !o.Clock.Now().Add(o.Interval).Before(deadline) {
			return fmt.Errorf("waiting for %s: %w after %s (%d probes): %v", url, ErrNotReady, o.Timeout, attempt, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-o.Clock.After(o.Interval):
		}
	}
}

// AliveCheck returns an Alive function that fails once the container is no
// longer running, with its exit status.
func AliveCheck(rt Runtime, name string) func(context.Context) error {
	return func(ctx context.Context) error {
		in, err := rt.Inspect(ctx, name)
		if err != nil {
			return err
		}
		if !in.Running() {
			return fmt.Errorf("container %s is %s with exit status %d", name, in.State, in.Exit)
		}
		return nil
	}
}

var hsErrRE = regexp.MustCompile(`(/\S*hs_err_pid[0-9]+\.log)`)

// HsErrPaths finds the JVM's fatal-error report paths named in log lines
// ("# /usr/local/zeebe/hs_err_pid2.log").
func HsErrPaths(lines []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lines {
		for _, m := range hsErrRE.FindAllString(l, -1) {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	return out
}

var hsErrNameRE = regexp.MustCompile(`^hs_err_pid[0-9]+\.log$`)

// CopyHsErr copies the JVM's hs_err_pid*.log files of a crashed container
// into destDir and returns the host paths. It looks where the log says the
// report went, then in workDirs inside the container (default
// /usr/local/zeebe), then in the host directories of the container's bind
// mounts (-XX:ErrorFile may point at the data directory).
func CopyHsErr(ctx context.Context, rt Runtime, name, destDir string, workDirs ...string) ([]string, error) {
	if len(workDirs) == 0 {
		workDirs = []string{ZeebeWorkDir}
	}
	var lines []string
	if err := rt.Logs(ctx, name, LogOptions{}, func(l LogLine) { lines = append(lines, l.Text) }); err != nil {
		return nil, fmt.Errorf("reading logs of %s for hs_err paths: %w", name, err)
	}
	cands := HsErrPaths(lines)
	if len(cands) == 0 {
		for _, d := range workDirs {
			names, err := rt.ListDir(ctx, name, d)
			if err != nil {
				continue
			}
			for _, n := range names {
				if hsErrNameRE.MatchString(n) {
					cands = append(cands, path.Join(d, n))
				}
			}
		}
	}
	if err := os.MkdirAll(destDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", destDir, err)
	}
	var out []string
	var errs []error
	for _, c := range cands {
		data, err := readAll(ctx, rt, name, c)
		if err != nil {
			// Maybe the report is on a bind mount: look on the host side.
			data, err = readFromMounts(ctx, rt, name, c)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		dst := filepath.Join(destDir, name+"-"+path.Base(c))
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return out, fmt.Errorf("writing %s: %w", dst, err)
		}
		out = append(out, dst)
	}
	if len(out) == 0 {
		if len(errs) > 0 {
			return nil, fmt.Errorf("copying hs_err report of %s: %w", name, errors.Join(errs...))
		}
		return nil, fmt.Errorf("no hs_err_pid*.log named in the log of %s nor found in %v: %w", name, workDirs, ErrNotFound)
	}
	sort.Strings(out)
	return out, nil
}

func readFromMounts(ctx context.Context, rt Runtime, name, p string) ([]byte, error) {
	in, err := rt.Inspect(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, m := range in.Mounts {
		rel, err := filepath.Rel(m.Target, p)
		if err != nil || rel == ".." || len(rel) > 2 && rel[:3] == "../" {
			continue
		}
		if data, err := os.ReadFile(filepath.Join(m.Source, rel)); err == nil {
			return data, nil
		}
	}
	return nil, fmt.Errorf("%s is neither in container %s nor on its mounts: %w", p, name, ErrNotFound)
}
