// Command testapp is the workload of the real-node end-to-end tests and demo:
// one static binary, three roles.
//
//	testapp server  an HTTP server that answers every request with 200, or with
//	                500 for a configured share of requests while its fault switch
//	                is on (below). Each answer carries the pod's name (X-Pod).
//	testapp load    a steady load client: a fixed request rate against one or
//	                more URLs; it counts requests and 5xx per answering pod and
//	                serves those counts as JSON on GET /counts (POST /pause and
//	                /resume stop and restart the load, so a test can compare
//	                quiescent totals).
//	testapp pause   sleeps until SIGTERM and reaps children: the sandbox ("pause")
//	                container of every pod on the tests' real node.
//
// The fault switch is honest: the server reads its own pod's labels through
// the downward API (a volume file, --labels-file) and, when the label
// meshshift.io/dataplane equals --fault-mode, answers --fault-share of its
// requests with 500. It models an application that breaks under a new
// dataplane; nothing outside the pod tells it to fail.
//
// It imports nothing of meshshift.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testapp server|load|pause [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "server":
		err = serve(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	case "pause":
		err = pause()
	default:
		err = fmt.Errorf("unknown role %q: want server, load or pause", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(1)
	}
}
