package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/journal"
)

var t0 = time.Date(2025, 6, 12, 9, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func seedLines(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "detect", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// fullDrop is a journal shaped like the nfs-full-drop scenario: steady load,
// a full drop at +30s, the msync IOException and INACTIVE, heal at +70s,
// the partition healthy again at +80s.
func fullDrop(t *testing.T, passed bool) []journal.Record {
	t.Helper()
	recs := []journal.Record{{Time: at(0), Type: journal.TypeRunStart, Run: &journal.Run{
		Scenario: "nfs-full-drop", Title: "How does Zeebe behave when NFS drops everything",
		Summary:  "A Zeebe broker with its data directory on NFS (soft,timeo=10) under load; all NFS traffic dropped for 40 s.",
		Expected: "Processing stops with an msync IOException and Raft goes INACTIVE; after heal the partition recovers.",
		Setup:    []string{"storage: nfs (knfsd in a qemu guest), mount options soft,timeo=10,retrans=2", "target: zeebe 8.7.5, 1 partition", "load: 5/s, 1 worker"},
	}}}
	steps := []journal.Step{
		{Index: 0, Action: "drop", Detail: "all tcp to 10.0.2.2:2049", Offset: 30 * time.Second, For: 40 * time.Second},
		{Index: 1, Action: "heal", Detail: "fault f1", Offset: 70 * time.Second},
	}
	for _, s := range steps {
		s.PlannedAt = t0.Add(s.Offset)
		recs = append(recs, journal.Record{Time: at(0), Type: journal.TypeStepPlanned, Step: ptr(s)})
	}
	for sec := 1; sec <= 100; sec++ {
		s := journal.LoadSample{T: at(float64(sec)), Interval: time.Second, Source: "zeebe", Created: 5, Completed: 5,
			LatencyP50: 4 * time.Millisecond, LatencyP95: 9 * time.Millisecond, LatencyP99: 15 * time.Millisecond, ByPartition: map[int32]int{1: 5}}
		if sec > 30 && sec <= 70 {
			s.Created, s.Completed = 0, 0
			s.Errors = map[string]int{journal.ErrDeadlineExceeded: 2}
			s.LatencyP50, s.LatencyP95, s.LatencyP99 = 0, 0, 0
			if sec > 56 {
				s.Errors[journal.ErrUnavailable] = 3
			}
		}
		recs = append(recs, journal.Record{Time: s.T, Type: journal.TypeLoadSample, Load: ptr(s)})
		if sec == 30 {
			st := steps[0]
			st.PlannedAt, st.ActualAt, st.Lag = at(30), at(30.004), 4*time.Millisecond
			recs = append(recs,
				journal.Record{Time: at(30.004), Type: journal.TypeStepStarted, Step: ptr(st)},
				journal.Record{Time: at(30.01), Type: journal.TypeFaultApplied, Fault: &journal.Fault{ID: "f1", Kind: "drop",
					Description: "drop all tcp to 10.0.2.2:2049",
					Rules:       []string{"iptables -t filter -I NFSLAB-OUTPUT 1 -p tcp -d 10.0.2.2/32 --dport 2049 -m comment --comment nfslab:f1 -j DROP"}}},
				journal.Record{Time: at(30.02), Type: journal.TypeStepDone, Step: ptr(st)})
		}
		if sec > 30 && sec <= 70 && sec%5 == 0 {
			recs = append(recs, journal.Record{Time: at(float64(sec)), Type: journal.TypeFaultCounters,
				Counters: &journal.FaultCounters{ID: "f1", Kind: "drop", Packets: uint64(sec-30) * 7 / 8, Bytes: uint64(sec-30) * 58982, Counted: true}})
		}
		if sec == 70 {
			st := steps[1]
			st.PlannedAt, st.ActualAt, st.Lag = at(70), at(70.002), 2*time.Millisecond
			recs = append(recs,
				journal.Record{Time: at(70.002), Type: journal.TypeStepStarted, Step: ptr(st)},
				journal.Record{Time: at(70.01), Type: journal.TypeFaultHealed, Fault: &journal.Fault{ID: "f1", Kind: "drop"}},
				journal.Record{Time: at(70.02), Type: journal.TypeStepDone, Step: ptr(st)})
		}
	}
	recs = append(recs,
		journal.Record{Time: at(32), Type: journal.TypeDetectorHit, Hit: &journal.Hit{Detector: "deadline-exceeded", Time: at(32), Source: "load",
			Evidence: []string{"2025/06/12 09:00:32 Failed to activate jobs for worker 'nfslab': rpc error: code = DeadlineExceeded desc = context deadline exceeded"}}},
		journal.Record{Time: at(55.2), Type: journal.TypeDetectorHit, Hit: &journal.Hit{Detector: "msync-ioexception", Time: at(55.2), Source: "zeebe", Line: 812,
			Evidence: seedLines(t, "seed000-msync.log"), Fields: map[string]string{"error": "Input/output error", "partition": "1"}}},
		journal.Record{Time: at(55.3), Type: journal.TypeDetectorHit, Hit: &journal.Hit{Detector: "raft-inactive", Time: at(55.3), Source: "zeebe",
			Evidence: seedLines(t, "seed000-raft-inactive.log")}},
		journal.Record{Time: at(81), Type: journal.TypeDetectorHit, Hit: &journal.Hit{Detector: "partition-healthy", Time: at(81), Source: "zeebe",
			Evidence: []string{"[2025-06-12 09:01:21.000] [zb-actors-1] [{actor-name=HealthCheckService}] INFO ", "\tio.camunda.zeebe.broker.system - Partition-1 recovered, marking it as healthy <b>&amp;</b>"}}},
		journal.Record{Time: at(90), Type: journal.TypeNote, Note: "recovery measured 11 s after heal"},
		journal.Record{Time: at(100), Type: journal.TypeExpectation, Expectation: &journal.Expectation{Name: "msync-ioexception fires within 60s of the drop", Held: true, Detail: "fired at +25.2s after the drop"}},
		journal.Record{Time: at(100), Type: journal.TypeExpectation, Expectation: &journal.Expectation{Name: "fault f1 matched traffic", Held: true, Detail: "35 packets"}},
		journal.Record{Time: at(100), Type: journal.TypeExpectation, Expectation: &journal.Expectation{Name: "partition healthy within 30s of heal", Held: passed, Detail: "healthy at +11s"}},
		journal.Record{Time: at(100.5), Type: journal.TypeRunEnd, End: &journal.End{Passed: passed, RolledBack: []string{"f1"}}},
	)
	return recs
}

func ptr[T any](v T) *T { return &v }
