package daemon

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/daemonapi"
	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsFaultSeries(t *testing.T) {
	exp := time.Unix(1767000000, 0)
	fs := []netfault.Fault{
		{ID: "d1", Spec: netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5", Port: 2049}, Expires: exp, Packets: 5, Bytes: 500, Counted: true},
		{ID: "u1", Spec: netfault.Spec{Kind: netfault.KindUnreachable, Dst: "10.0.0.6", Netns: "lab"}, Expires: exp},
	}
	var listErr error
	m, err := newMetrics(func() ([]netfault.Fault, error) { return fs, listErr })
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP nfslab_fault_packets_total Packets matched by the rules of an active fault.
# TYPE nfslab_fault_packets_total counter
nfslab_fault_packets_total{dst="10.0.0.5",id="d1",kind="drop",netns="",port="2049"} 5
# HELP nfslab_fault_bytes_total Bytes matched by the rules of an active fault.
# TYPE nfslab_fault_bytes_total counter
nfslab_fault_bytes_total{dst="10.0.0.5",id="d1",kind="drop",netns="",port="2049"} 500
# HELP nfslab_fault_expiry_seconds Unix time at which an active fault expires.
# TYPE nfslab_fault_expiry_seconds gauge
nfslab_fault_expiry_seconds{dst="10.0.0.5",id="d1",kind="drop",netns="",port="2049"} 1.767e+09
nfslab_fault_expiry_seconds{dst="10.0.0.6",id="u1",kind="unreachable",netns="lab",port="0"} 1.767e+09
# HELP nfslab_faults_active Active nfslab faults in the managed namespaces.
# TYPE nfslab_faults_active gauge
nfslab_faults_active{kind="delay"} 0
nfslab_faults_active{kind="drop"} 1
nfslab_faults_active{kind="limit"} 0
nfslab_faults_active{kind="reject"} 0
nfslab_faults_active{kind="unreachable"} 1
# HELP nfslab_fault_list_up Whether reading fault counters from the kernel worked.
# TYPE nfslab_fault_list_up gauge
nfslab_fault_list_up 1
`
	names := []string{"nfslab_fault_packets_total", "nfslab_fault_bytes_total", "nfslab_fault_expiry_seconds", "nfslab_faults_active", "nfslab_fault_list_up"}
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	// The kernel cannot be read: no fault series, list_up 0.
	listErr = errors.New("iptables: exit status 4")
	want = `
# HELP nfslab_faults_active Active nfslab faults in the managed namespaces.
# TYPE nfslab_faults_active gauge
nfslab_faults_active{kind="delay"} 0
nfslab_faults_active{kind="drop"} 0
nfslab_faults_active{kind="limit"} 0
nfslab_faults_active{kind="reject"} 0
nfslab_faults_active{kind="unreachable"} 0
# HELP nfslab_fault_list_up Whether reading fault counters from the kernel worked.
# TYPE nfslab_fault_list_up gauge
nfslab_fault_list_up 0
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

func TestMetricsOperations(t *testing.T) {
	m, err := newMetrics(func() ([]netfault.Fault, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues("heal")); got != 0 {
		t.Errorf("heal errors before any heal = %v", got)
	}
	m.observeApply(3*time.Millisecond, nil)
	m.observeApply(7*time.Second, nil)
	m.observeApply(time.Millisecond, errors.New("xtables lock"))
	m.observeHeal(2*time.Millisecond, nil)
	m.observeHeal(0, errors.New("gone"))
	m.observeHeal(0, errors.New("gone"))
	m.event(daemonapi.EventFaultApplied)
	m.event(daemonapi.EventFaultApplied)

	for _, c := range []struct {
		op   string
		want float64
	}{{"apply", 1}, {"heal", 2}} {
		if got := testutil.ToFloat64(m.errors.WithLabelValues(c.op)); got != c.want {
			t.Errorf("nfslab_fault_errors_total{op=%q} = %v, want %v", c.op, got, c.want)
		}
	}
	if got := testutil.ToFloat64(m.events.WithLabelValues(daemonapi.EventFaultApplied)); got != 2 {
		t.Errorf("nfslab_events_total{type=%q} = %v, want 2", daemonapi.EventFaultApplied, got)
	}
	want := `
# HELP nfslab_fault_apply_seconds Time to apply one fault in the kernel.
# TYPE nfslab_fault_apply_seconds histogram
nfslab_fault_apply_seconds_bucket{le="0.001"} 0
nfslab_fault_apply_seconds_bucket{le="0.0025"} 0
nfslab_fault_apply_seconds_bucket{le="0.005"} 1
nfslab_fault_apply_seconds_bucket{le="0.01"} 1
nfslab_fault_apply_seconds_bucket{le="0.025"} 1
nfslab_fault_apply_seconds_bucket{le="0.05"} 1
nfslab_fault_apply_seconds_bucket{le="0.1"} 1
nfslab_fault_apply_seconds_bucket{le="0.25"} 1
nfslab_fault_apply_seconds_bucket{le="0.5"} 1
nfslab_fault_apply_seconds_bucket{le="1"} 1
nfslab_fault_apply_seconds_bucket{le="2.5"} 1
nfslab_fault_apply_seconds_bucket{le="5"} 1
nfslab_fault_apply_seconds_bucket{le="10"} 2
nfslab_fault_apply_seconds_bucket{le="+Inf"} 2
nfslab_fault_apply_seconds_sum 7.003
nfslab_fault_apply_seconds_count 2
`
	if err := testutil.CollectAndCompare(m.apply, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.heal); n != 1 {
		t.Errorf("heal histogram has %d series, want 1", n)
	}
}

// TestMetricsBadLabel keeps a fault whose label is not UTF-8 from failing the
// scrape (client_golang's Must helpers would panic): the rest is served.
func TestMetricsBadLabel(t *testing.T) {
	fs := []netfault.Fault{
		{ID: "bad\xff", Spec: netfault.Spec{Kind: netfault.KindDrop, Dst: "10.0.0.5"}, Counted: true},
	}
	m, err := newMetrics(func() ([]netfault.Fault, error) { return fs, nil })
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.handler(slog.New(slog.NewTextHandler(io.Discard, nil))).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `nfslab_faults_active{kind="drop"} 1`) {
		t.Errorf("scrape with a bad label: %d\n%s", rec.Code, rec.Body.String())
	}
}
