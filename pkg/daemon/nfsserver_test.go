package daemon_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfslab/nfslab/pkg/client/clienttest"
	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/daemon"
	"github.com/nfslab/nfslab/pkg/nfsserver"
)

func TestNFSServerFaultEndpoint(t *testing.T) {
	clk := clock.NewFake(t0)
	srv, err := daemon.New(daemon.Options{Injector: clienttest.New(clk), Clock: clk, VerifyWindow: -1})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var calls []string
	srv.Handle(daemon.NFSServerFaultPattern, daemon.NFSServerFaults(srv, func(_ context.Context, netns string, f nfsserver.ServerFault, on bool, tg nfsserver.FaultTarget) error {
		mu.Lock()
		defer mu.Unlock()
		c := fmt.Sprintf("%s %s %s %v", clk.Now().Sub(t0), netns, f, on)
		if !tg.IsZero() {
			c += " " + tg.Path + ":" + tg.Blocks
		}
		calls = append(calls, c)
		if netns == "gone" {
			return fmt.Errorf("%w: no namespace gone", nfsserver.ErrNotRunning)
		}
		return nil
	}))
	post := func(body string) (int, string) {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/nfs-server/faults", strings.NewReader(body)))
		return w.Code, w.Body.String()
	}
	for _, c := range []struct {
		body string
		code int
		want string
	}{
		{`{"fault":"explode","on":true}`, 400, `server fault \"explode\"`},
		{`{"fault":"unexport","on":true,"netns":"a/b"}`, 400, `name \"a/b\"`},
		{`{"fault":"expire-clients","on":true,"for":"5s"}`, 400, "for 5s"},
		{`{"fault":"stop","on":false,"for":"5s"}`, 400, "for 5s"},
		{`{"fault":"stop","on":true,"bogus":1}`, 400, "bogus"},
		{`{"fault":"eio","on":true}`, 400, "eio needs a path"},
		{`{"fault":"eio","on":true,"path":"../etc/passwd"}`, 400, `path \"../etc/passwd\"`},
		{`{"fault":"eio","on":true,"blocks":"9-3"}`, 400, `blocks \"9-3\"`},
		{`{"fault":"fill","on":true,"path":"x"}`, 400, "eio fault only"},
		{`{"fault":"stop","on":true,"netns":"gone"}`, 404, "no namespace gone"},
	} {
		if code, body := post(c.body); code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d naming %q", c.body, code, body, c.code, c.want)
		}
	}
	mu.Lock()
	if len(calls) != 1 { // only the request that passed validation
		t.Errorf("bad requests reached the server: %q", calls)
	}
	calls = nil
	mu.Unlock()
	if code, body := post(`{"fault":"unexport","on":true,"for":"20s"}`); code != 200 || !strings.Contains(body, `"until"`) {
		t.Fatalf("unexport for 20s: %d %s", code, body)
	}
	clk.Advance(19 * time.Second)
	clk.Advance(2 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(calls)
		mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"0s nfslab-nfsd unexport true", "20s nfslab-nfsd unexport false"}
	if strings.Join(calls, "|") != strings.Join(want, "|") {
		t.Errorf("calls %q, want %q (switched off when for ends)", calls, want)
	}
	// eio takes its target on and switches off without one.
	calls = nil
	mu.Unlock()
	if code, body := post(`{"fault":"eio","on":true,"path":"journal-1.log","blocks":"8-","for":"10s"}`); code != 200 {
		t.Fatalf("eio for 10s: %d %s", code, body)
	}
	clk.Advance(11 * time.Second)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(calls)
		mu.Unlock()
		if n == 2 {
			break
		}
	}
	mu.Lock()
	want = []string{"21s nfslab-nfsd eio true journal-1.log:8-", "31s nfslab-nfsd eio false"}
	if strings.Join(calls, "|") != strings.Join(want, "|") {
		t.Errorf("calls %q, want %q", calls, want)
	}
}
