package app_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshshift/meshshift/bpf/kerneltest"
	"github.com/meshshift/meshshift/cmd/meshshift/app"
)

func TestAgentCommandRejectsBadFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"agent"}, "node name"},
		{[]string{"agent", "--node-name=n1", "--interval=100ms"}, "interval 100ms: allowed 1s to 10m"},
		{[]string{"agent", "--node-name=n1", "--max-cgroups=70000"}, "max cgroups 70000"},
		{[]string{"agent", "--node-name=n1", "--listen="}, "listen address"},
	} {
		cmd := app.NewRootCommand()
		cmd.SetArgs(tt.args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one containing %q", tt.args, err, tt.want)
		}
	}
}

// TestAgentCommandServesRealCounts runs the built binary standalone with its
// programs on a test cgroup, sends HTTP traffic from a child cgroup and reads
// the counts from its /metrics.
func TestAgentCommandServesRealCounts(t *testing.T) {
	mnt := kerneltest.RequireRoot(t)
	root := kerneltest.Cgroup(t, mnt, kerneltest.RandName("meshshift-test-"))
	work := kerneltest.Cgroup(t, root, "work")
	bin := buildMeshshift(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out bytes.Buffer
	cmd := exec.Command(bin, "agent", "--standalone", "--node-name=n1", "--listen="+addr, "--interval=1s", "--cgroup-root="+root)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("agent output:\n%s", out.String())
		}
	})
	agentWaitHTTP(t, "http://"+addr+"/healthz")

	var srv net.Listener
	kerneltest.InCgroup(t, mnt, work, func() {
		if srv, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
		go hs.Serve(srv)
		t.Cleanup(func() { hs.Close() })
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		for range 5 {
			resp, err := c.Get("http://" + srv.Addr().String() + "/")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	// Standalone: no pod names, so the work cgroup's traffic is unattributed.
	want := `meshshift_http_requests_total{namespace="",pod="",protocol="http1",side="server",status_class="2xx",workload="unattributed"} 5`
	deadline := time.Now().Add(15 * time.Second)
	for {
		body := agentGet(t, "http://"+addr+"/metrics")
		if strings.Contains(body, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never had %s:\n%s", want, agentGrepLines(body, "meshshift_http_requests_total"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func agentWaitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // the agent loads its programs first: seconds on a loaded machine
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered 200 (last error %v)", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func agentGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func agentGrepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return fmt.Sprint(out)
}
