package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/nfslab/nfslab/pkg/netfault"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// scrapeTimeout bounds the kernel reads of one scrape: a stuck xtables lock
// must not pile up scrapes.
const scrapeTimeout = 30 * time.Second

// latencyBuckets are in seconds: iptables calls take milliseconds, a stuck
// xtables lock seconds.
func latencyBuckets() []float64 {
	return []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
}

// metrics keeps the daemon's own measurements on a registry of its own; fault
// counters are read from the kernel at scrape time.
type metrics struct {
	reg    *prometheus.Registry
	apply  prometheus.Histogram
	heal   prometheus.Histogram
	errors *prometheus.CounterVec // by op: apply, heal
	events *prometheus.CounterVec // by type
}

// newMetrics registers the daemon's series; list reads the active faults for
// each scrape.
func newMetrics(list func() ([]netfault.Fault, error)) (*metrics, error) {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nfslab_fault_apply_seconds", Help: "Time to apply one fault in the kernel.", Buckets: latencyBuckets(),
		}),
		heal: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nfslab_fault_heal_seconds", Help: "Time to heal one fault in the kernel.", Buckets: latencyBuckets(),
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nfslab_fault_errors_total", Help: "Failed fault operations.",
		}, []string{"op"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nfslab_events_total", Help: "Events published, by type.",
		}, []string{"type"}),
	}
	// Both ops show from the start, so a rate over them has a zero to begin at.
	m.errors.WithLabelValues("apply")
	m.errors.WithLabelValues("heal")
	for _, c := range []prometheus.Collector{newFaultCollector(list), m.apply, m.heal, m.errors, m.events} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return m, nil
}

// handler serves the registry in the Prometheus formats; a series that fails
// is logged and left out, the rest still served.
func (m *metrics) handler(log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

func (m *metrics) observeApply(d time.Duration, err error) {
	if err != nil {
		m.errors.WithLabelValues("apply").Inc()
		return
	}
	m.apply.Observe(d.Seconds())
}

func (m *metrics) observeHeal(d time.Duration, err error) {
	if err != nil {
		m.errors.WithLabelValues("heal").Inc()
		return
	}
	m.heal.Observe(d.Seconds())
}

func (m *metrics) event(typ string) { m.events.WithLabelValues(typ).Inc() }

// scrapeFaults lists the faults of the managed namespaces for one scrape.
func (s *Server) scrapeFaults() ([]netfault.Fault, error) {
	ctx, cancel := context.WithTimeout(s.ctx, scrapeTimeout)
	defer cancel()
	return s.listAll(ctx, s.managed())
}

// faultCollector reads the active faults and their kernel counters at scrape
// time, as an exporter does; it keeps no copy of them.
type faultCollector struct {
	list                               func() ([]netfault.Fault, error)
	packets, bytes, expiry, active, up *prometheus.Desc
}

func newFaultCollector(list func() ([]netfault.Fault, error)) *faultCollector {
	labels := []string{"id", "kind", "dst", "port", "netns"}
	return &faultCollector{
		list: list,
		packets: prometheus.NewDesc("nfslab_fault_packets_total",
			"Packets matched by the rules of an active fault.", labels, nil),
		bytes: prometheus.NewDesc("nfslab_fault_bytes_total",
			"Bytes matched by the rules of an active fault.", labels, nil),
		expiry: prometheus.NewDesc("nfslab_fault_expiry_seconds",
			"Unix time at which an active fault expires.", labels, nil),
		active: prometheus.NewDesc("nfslab_faults_active",
			"Active nfslab faults in the managed namespaces.", []string{"kind"}, nil),
		up: prometheus.NewDesc("nfslab_fault_list_up",
			"Whether reading fault counters from the kernel worked.", nil, nil),
	}
}

func (c *faultCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.expiry, c.active, c.up} {
		ch <- d
	}
}

func (c *faultCollector) Collect(ch chan<- prometheus.Metric) {
	fs, err := c.list()
	up := 1.0
	if err != nil {
		fs, up = nil, 0
	}
	byKind := map[netfault.Kind]int{}
	for _, f := range fs {
		byKind[f.Spec.Kind]++
		labels := []string{f.ID, string(f.Spec.Kind), f.Spec.Dst, strconv.Itoa(f.Spec.Port), f.Spec.Netns}
		if f.Counted {
			ch <- constMetric(c.packets, prometheus.CounterValue, float64(f.Packets), labels...)
			ch <- constMetric(c.bytes, prometheus.CounterValue, float64(f.Bytes), labels...)
		}
		ch <- constMetric(c.expiry, prometheus.GaugeValue, float64(f.Expires.Unix()), labels...)
	}
	for _, k := range netfault.Kinds {
		ch <- constMetric(c.active, prometheus.GaugeValue, float64(byKind[k]), string(k))
	}
	ch <- constMetric(c.up, prometheus.GaugeValue, up)
}

// constMetric is prometheus.MustNewConstMetric without the panic: a label
// value that is not UTF-8 fails the scrape with an error naming it.
func constMetric(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}
