package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshshift/meshshift/bpf"
)

// The -rss run's HTTP/2 load: a child process (so that its connections'
// memory is not the agent's) holds one live h2c connection per pod cgroup,
// each having carried requests with distinct header values (HPACK tables
// filled on both ends), until its stdin closes.

// h2PodCgroup is the cgroup of pod i below parent (as runRSS makes them).
func h2PodCgroup(parent string, i int) string {
	return filepath.Join(parent, "kubepods", "besteffort", fmt.Sprintf("pod00000000-0000-4000-8000-%012d", i))
}

// startH2Peers starts the child and waits until its n connections are up;
// stop ends it.
func startH2Peers(parent string, n int) (stop func() error, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(exe, "-h2-peers", parent, "-cgroups", fmt.Sprint(n))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("child stdin: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("child stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start http2 peers: %w", err)
	}
	stop = func() error {
		in.Close()
		return cmd.Wait()
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		return nil, errors.Join(fmt.Errorf("http2 peers: %q, %w", line, err), stop())
	}
	return stop, nil
}

// runH2Peers is the child: n connections, one from each pod cgroup, to an
// h2c server in pod 0's cgroup.
func runH2Peers(parent string, n int) error {
	orig, err := bpf.ProcessCgroup(mustMount())
	if err != nil {
		return err
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	var ln net.Listener
	var transports []*http.Transport
	for i := range n {
		if err := bpf.MoveProcess(h2PodCgroup(parent, i)); err != nil {
			return err
		}
		if i == 0 {
			if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			srv := &http.Server{Protocols: &protos, ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Echo", r.Header.Get("X-Request-Tag"))
				w.WriteHeader(http.StatusOK)
			})}
			go func() { _ = srv.Serve(ln) }()
		}
		tr := &http.Transport{Protocols: &protos, MaxConnsPerHost: 1}
		c := &http.Client{Transport: tr}
		for j := range 3 {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/conn/%d/%d", ln.Addr(), i, j), nil)
			req.Header.Set("X-Request-Tag", fmt.Sprintf("tag-%d-%d-%s", i, j, strings.Repeat("v", 40)))
			resp, err := c.Do(req)
			if err != nil {
				return errors.Join(fmt.Errorf("request %d on connection %d: %w", j, i, err), bpf.MoveProcess(orig))
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		transports = append(transports, tr)
	}
	if err := bpf.MoveProcess(orig); err != nil {
		return err
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, tr := range transports {
		tr.CloseIdleConnections()
	}
	return ln.Close()
}

func mustMount() string {
	mnt, err := bpf.Cgroup2Mount()
	if err != nil {
		return "/sys/fs/cgroup"
	}
	return mnt
}
