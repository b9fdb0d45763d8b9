package daemon

import (
	"bufio"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nfslab/nfslab/pkg/netfault"
)

// metrics keeps the daemon's own measurements; fault counters are read from
// the kernel at scrape time.
type metrics struct {
	mu          sync.Mutex
	apply       histogram
	heal        histogram
	applyErrors uint64
	healErrors  uint64
	events      map[string]uint64
}

// Buckets in seconds: iptables calls take milliseconds, a stuck xtables lock
// seconds.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	n      uint64
}

func (h *histogram) observe(d time.Duration) {
	if h.counts == nil {
		h.counts = make([]uint64, len(latencyBuckets))
	}
	v := d.Seconds()
	h.sum += v
	h.n++
	for i, b := range latencyBuckets {
		if v <= b {
			h.counts[i]++
			return
		}
	}
}

func newMetrics() *metrics { return &metrics{events: map[string]uint64{}} }

func (m *metrics) observeApply(d time.Duration, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.applyErrors++
		return
	}
	m.apply.observe(d)
}

func (m *metrics) observeHeal(d time.Duration, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.healErrors++
		return
	}
	m.heal.observe(d)
}

func (m *metrics) event(typ string) {
	m.mu.Lock()
	m.events[typ]++
	m.mu.Unlock()
}

// labelValue escapes a Prometheus label value.
func labelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func writeHistogram(w *bufio.Writer, name, help string, h histogram) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum uint64
	for i, b := range latencyBuckets {
		if h.counts != nil {
			cum += h.counts[i]
		}
		fmt.Fprintf(w, "%s_bucket{le=\"%s\"} %d\n", name, strconv.FormatFloat(b, 'g', -1, 64), cum)
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %s\n%s_count %d\n",
		name, h.n, name, strconv.FormatFloat(h.sum, 'g', -1, 64), name, h.n)
}

// handleMetrics writes the Prometheus text exposition format by hand: the
// daemon needs a handful of series, not a client library.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	fs, listErr := s.listAll(r.Context(), s.managed())
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	bw := bufio.NewWriter(w)
	defer bw.Flush()

	fmt.Fprintf(bw, "# HELP nfslab_fault_packets_total Packets matched by the rules of an active fault.\n# TYPE nfslab_fault_packets_total counter\n")
	for _, f := range fs {
		if f.Counted {
			fmt.Fprintf(bw, "nfslab_fault_packets_total{%s} %d\n", faultLabels(f), f.Packets)
		}
	}
	fmt.Fprintf(bw, "# HELP nfslab_fault_bytes_total Bytes matched by the rules of an active fault.\n# TYPE nfslab_fault_bytes_total counter\n")
	for _, f := range fs {
		if f.Counted {
			fmt.Fprintf(bw, "nfslab_fault_bytes_total{%s} %d\n", faultLabels(f), f.Bytes)
		}
	}
	fmt.Fprintf(bw, "# HELP nfslab_fault_expiry_seconds Unix time at which an active fault expires.\n# TYPE nfslab_fault_expiry_seconds gauge\n")
	for _, f := range fs {
		fmt.Fprintf(bw, "nfslab_fault_expiry_seconds{%s} %d\n", faultLabels(f), f.Expires.Unix())
	}
	byKind := map[string]int{}
	for _, f := range fs {
		byKind[string(f.Spec.Kind)]++
	}
	fmt.Fprintf(bw, "# HELP nfslab_faults_active Active nfslab faults in the managed namespaces.\n# TYPE nfslab_faults_active gauge\n")
	for _, k := range []string{"drop", "reject", "unreachable"} {
		fmt.Fprintf(bw, "nfslab_faults_active{kind=%q} %d\n", k, byKind[k])
	}
	up := 1
	if listErr != nil {
		up = 0
	}
	fmt.Fprintf(bw, "# HELP nfslab_fault_list_up Whether reading fault counters from the kernel worked.\n# TYPE nfslab_fault_list_up gauge\nnfslab_fault_list_up %d\n", up)

	s.metrics.mu.Lock()
	apply, heal := s.metrics.apply, s.metrics.heal
	applyErr, healErr := s.metrics.applyErrors, s.metrics.healErrors
	events := make([]string, 0, len(s.metrics.events))
	for k := range s.metrics.events {
		events = append(events, k)
	}
	sort.Strings(events)
	counts := make([]uint64, len(events))
	for i, k := range events {
		counts[i] = s.metrics.events[k]
	}
	s.metrics.mu.Unlock()

	writeHistogram(bw, "nfslab_fault_apply_seconds", "Time to apply one fault in the kernel.", apply)
	writeHistogram(bw, "nfslab_fault_heal_seconds", "Time to heal one fault in the kernel.", heal)
	fmt.Fprintf(bw, "# HELP nfslab_fault_errors_total Failed fault operations.\n# TYPE nfslab_fault_errors_total counter\n")
	fmt.Fprintf(bw, "nfslab_fault_errors_total{op=\"apply\"} %d\nnfslab_fault_errors_total{op=\"heal\"} %d\n", applyErr, healErr)
	fmt.Fprintf(bw, "# HELP nfslab_events_total Events published, by type.\n# TYPE nfslab_events_total counter\n")
	for i, k := range events {
		fmt.Fprintf(bw, "nfslab_events_total{type=\"%s\"} %d\n", labelValue(k), counts[i])
	}
}

func faultLabels(f netfault.Fault) string {
	return fmt.Sprintf(`id="%s",kind="%s",dst="%s",port="%d",netns="%s"`,
		labelValue(f.ID), labelValue(string(f.Spec.Kind)), labelValue(f.Spec.Dst), f.Spec.Port, labelValue(f.Spec.Netns))
}
