package cli

import (
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshshift/meshshift/signals"
)

func TestParseTrafficCallers(t *testing.T) {
	s, err := ParseTraffic("t.yaml", []byte(`time: 2026-01-01T00:00:00Z
workloads:
- namespace: orders
  workload: api
  callers: [shop/frontend, batch/report, shop/frontend, shop/cart]
- {namespace: shop, workload: cart}
`))
	if err != nil {
		t.Fatal(err)
	}
	api, _ := s.Lookup("orders", "api")
	want := []signals.WorkloadKey{{Namespace: "batch", Name: "report"}, {Namespace: "shop", Name: "cart"}, {Namespace: "shop", Name: "frontend"}}
	if diff := cmp.Diff(want, api.Callers); diff != "" {
		t.Errorf("callers (-want +got):\n%s", diff)
	}
	if cart, _ := s.Lookup("shop", "cart"); cart.Callers != nil {
		t.Errorf("cart has callers %v, want none", cart.Callers)
	}
	for in, want := range map[string]string{
		"workloads:\n- {namespace: a, workload: w, callers: [frontend]}\n":           `field workloads[0].callers[0]: "frontend" is not namespace/name`,
		"workloads:\n- {namespace: a, workload: w, callers: [a/b, a/b/c]}\n":         `field workloads[0].callers[1]: "a/b/c" is not namespace/name`,
		"workloads:\n- {namespace: a, workload: w, callers: [/b]}\n":                 `field workloads[0].callers[0]: "/b" has an invalid namespace`,
		"workloads:\n- {namespace: a, workload: w, callers: [Shop/b]}\n":             `field workloads[0].callers[0]: "Shop/b" has an invalid namespace`,
		"workloads:\n- {namespace: a, workload: w, callers: [shop/]}\n":              `field workloads[0].callers[0]: "shop/" has an invalid workload name`,
		"workloads:\n- {namespace: a, workload: w}\n- {namespace: a, workload: w}\n": "field workloads[1]: workload a/w is listed twice",
		"workloads:\n- {namespace: a, workload: w, callers: shop/b}\n":               "cannot unmarshal",
	} {
		if _, err := ParseTraffic("t.yaml", []byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTraffic(%q): error %v, want %q", in, err, want)
		}
	}
}

// FuzzParseTraffic feeds arbitrary bytes to the traffic file parser: it
// must return an error or a snapshot whose callers are valid, sorted and
// unique, never panic. Seeds: testdata/fuzz/FuzzParseTraffic.
func FuzzParseTraffic(f *testing.F) {
	f.Add([]byte("time: 2026-01-01T00:00:00Z\nworkloads:\n- {namespace: a, workload: w, callers: [b/x, a/y, b/x]}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseTraffic("fuzz.yaml", b)
		if err != nil {
			if s != nil {
				t.Fatalf("error %v with a snapshot", err)
			}
			return
		}
		for k, w := range s.Workloads {
			if !sort.SliceIsSorted(w.Callers, func(i, j int) bool {
				a, b := w.Callers[i], w.Callers[j]
				return a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name)
			}) {
				t.Fatalf("%s: callers %v not sorted", k, w.Callers)
			}
			for i, c := range w.Callers {
				if c.Namespace == "" || c.Name == "" || (i > 0 && w.Callers[i-1] == c) {
					t.Fatalf("%s: bad or repeated caller %q in %v", k, c, w.Callers)
				}
			}
		}
	})
}
