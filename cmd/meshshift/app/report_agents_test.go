package app_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/meshshift/meshshift/bpf/agent"
	"github.com/meshshift/meshshift/bpf/agent/agenttest"
	"github.com/meshshift/meshshift/cmd/meshshift/app"
)

// TestReportReadsAgentsDirectly runs `report --agents` against a real node
// agent on 127.0.0.1 whose pod is shop/cart's, while cart serves 12 requests
// (4 of them 5xx) between the report's two reads.
func TestReportReadsAgentsDirectly(t *testing.T) {
	const uid = "0e1d2c3b-4a59-4687-9a0b-1c2d3e4f5a6b"
	node := agenttest.Start(t, uid, agent.PodMeta{Namespace: "shop", Name: "cart-7d9f8c6b5-x2x9q", Workload: "cart"})
	chdirRoot(t)
	node.Collect(t)
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	args := []string{"report", "-f", demo, "-n", "shop", "-o", "json", "--agents", "http://" + node.Addr, "--sample", "3s"}
	go func() { done <- app.Run(args, &stdout, &stderr) }()
	time.Sleep(time.Second) // after the first read
	node.Burst(t, 8, 4)
	if code := <-done; code != app.ExitOK {
		t.Fatalf("meshshift %s: exit %d\n%s", strings.Join(args, " "), code, &stderr)
	}
	var rep struct {
		Namespaces []struct {
			Namespace   string  `json:"namespace"`
			WithTraffic int     `json:"withTraffic"`
			RequestRate float64 `json:"requestRate"`
			ErrorRate   float64 `json:"errorRate"`
		} `json:"namespaces"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report -o json: %v\n%s", err, &stdout)
	}
	if len(rep.Namespaces) != 1 || rep.Namespaces[0].Namespace != "shop" {
		t.Fatalf("namespaces %+v, want shop only", rep.Namespaces)
	}
	shop := rep.Namespaces[0]
	// 12 requests, 4 of them failed, over the time between the agent's two
	// collections (the test's Collect, then the one after the burst a second
	// later): the rate is per the agent's own clock, not the report's reads.
	if shop.WithTraffic != 1 || shop.ErrorRate < 0.333 || shop.ErrorRate > 0.334 {
		t.Fatalf("shop read from the agent: %+v; want 1 workload with traffic, error rate 4/12", shop)
	}
	if window := 12 / shop.RequestRate; window < 0.9 || window > 3.5 {
		t.Fatalf("request rate %.2f/s: 12 requests over %.2fs, want the ~1s between the agent's collections", shop.RequestRate, window)
	}
}

func TestReportAgentsFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "-f", demo, "--agents", "http://127.0.0.1:1", "--traffic", "x.yaml"}, "are exclusive"},
		{[]string{"report", "-f", demo, "--agents", "127.0.0.1:9990"}, `flag --agents "127.0.0.1:9990": want a base URL`},
		{[]string{"report", "-f", demo, "--agents", "http://127.0.0.1:1", "--sample", "100ms"}, "flag --sample 100ms: allowed 1s to 10m"},
	} {
		chdirRoot(t)
		var stdout, stderr bytes.Buffer
		if code := app.Run(tt.args, &stdout, &stderr); code == app.ExitOK || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("meshshift %s: exit %d, stderr %q; want an error containing %q", strings.Join(tt.args, " "), code, &stderr, tt.want)
		}
	}
}
