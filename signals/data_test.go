package signals

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWorkloadName(t *testing.T) {
	cases := []struct {
		kind, owner, pod string
		labels           map[string]string
		want             string
	}{
		{"ReplicaSet", "web-7d9f", "web-7d9f-abcde", map[string]string{"pod-template-hash": "7d9f"}, "web"},
		{"ReplicaSet", "standalone", "standalone-x", map[string]string{"pod-template-hash": "7d9f"}, "standalone"},
		{"ReplicaSet", "rs", "rs-x", nil, "rs"},
		{"ReplicaSet", "storefront-6b9c8d7f5", "storefront-6b9c8d7f5-q2x", map[string]string{"rollouts-pod-template-hash": "6b9c8d7f5"}, "storefront"},
		{"StatefulSet", "db", "db-0", nil, "db"},
		{"", "", "bare", nil, "bare"},
	}
	for _, tc := range cases {
		if got := WorkloadName(tc.kind, tc.owner, tc.pod, tc.labels); got != tc.want {
			t.Errorf("WorkloadName(%s, %s) = %s, want %s", tc.kind, tc.owner, got, tc.want)
		}
	}
}

func TestTrafficStaleness(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tr := WorkloadTraffic{SampleTime: now.Add(-90 * time.Second), Protocols: []Protocol{ProtocolHTTP1, ProtocolTLS}}
	if tr.Age(now) != 90*time.Second || tr.Stale(now, 2*time.Minute) || !tr.Stale(now, time.Minute) {
		t.Errorf("age %s, stale(2m) %v, stale(1m) %v", tr.Age(now), tr.Stale(now, 2*time.Minute), tr.Stale(now, time.Minute))
	}
	if (WorkloadTraffic{}).Stale(now, time.Hour) != true {
		t.Error("a sample without time must be stale")
	}
	if (WorkloadTraffic{SampleTime: now.Add(time.Minute)}).Age(now) != 0 {
		t.Error("a sample from the future has age 0")
	}
	if !tr.HasProtocol(ProtocolTLS) || tr.HasProtocol(ProtocolHTTP2) {
		t.Error("HasProtocol")
	}
	snap := &TrafficSnapshot{Time: now, Workloads: map[WorkloadKey]WorkloadTraffic{{Namespace: "shop", Name: "web"}: tr}}
	if got, ok := snap.Lookup("shop", "web"); !ok || !cmp.Equal(got, tr) {
		t.Error("Lookup of a present workload")
	}
	if _, ok := snap.Lookup("shop", "db"); ok {
		t.Error("Lookup of an absent workload")
	}
	var nilSnap *TrafficSnapshot
	if _, ok := nilSnap.Lookup("shop", "web"); ok {
		t.Error("Lookup on a nil snapshot")
	}
}

func TestNodeCapabilities(t *testing.T) {
	cases := []struct {
		labels  map[string]string
		want    NodeCapabilities
		wantErr bool
	}{
		{nil, NodeCapabilities{}, false},
		{map[string]string{LabelNodeKernel: "6.1.0-37-cloud-amd64", LabelNodeEBPFLevel: "full"},
			NodeCapabilities{Known: true, Kernel: KernelVersion{6, 1, 0}, EBPF: EBPFFull}, false},
		{map[string]string{LabelNodeKernel: "5.10"}, NodeCapabilities{Known: true, Kernel: KernelVersion{5, 10, 0}, EBPF: EBPFNone}, false},
		{map[string]string{LabelNodeEBPFLevel: "basic"}, NodeCapabilities{Known: true, EBPF: EBPFBasic}, false},
		{map[string]string{LabelNodeKernel: "six"}, NodeCapabilities{}, true},
		{map[string]string{LabelNodeEBPFLevel: "max"}, NodeCapabilities{}, true},
	}
	for _, tc := range cases {
		got, err := NodeCapabilitiesFromLabels(tc.labels)
		if (err != nil) != tc.wantErr || !cmp.Equal(got, tc.want) {
			t.Errorf("%v: got %+v, %v; want %+v, error %v", tc.labels, got, err, tc.want, tc.wantErr)
		}
	}
	min := MinNodeCapabilities(
		NodeCapabilities{Known: true, Kernel: KernelVersion{6, 8, 0}, EBPF: EBPFFull},
		NodeCapabilities{},
		NodeCapabilities{Known: true, Kernel: KernelVersion{5, 15, 2}, EBPF: EBPFBasic},
		NodeCapabilities{Known: true, Kernel: KernelVersion{6, 1, 0}, EBPF: EBPFFull},
	)
	if want := (NodeCapabilities{Known: true, Kernel: KernelVersion{5, 15, 2}, EBPF: EBPFBasic}); min != want {
		t.Errorf("MinNodeCapabilities = %+v, want %+v", min, want)
	}
	if MinNodeCapabilities(NodeCapabilities{}).Known {
		t.Error("unknown nodes give unknown capabilities")
	}
}

func TestFeaturesHelpers(t *testing.T) {
	fs := Features{
		{FeatureRetries, "VirtualService", "shop", "b"},
		{FeatureHTTPRouting, "VirtualService", "shop", "b"},
		{FeatureRetries, "VirtualService", "shop", "b"},
		{FeatureHTTPRouting, "HTTPRoute", "shop", "a"},
	}.Normalize()
	want := Features{{FeatureHTTPRouting, "HTTPRoute", "shop", "a"}, {FeatureHTTPRouting, "VirtualService", "shop", "b"}, {FeatureRetries, "VirtualService", "shop", "b"}}
	if diff := cmp.Diff(want, fs); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]string{"http-routing", "retries"}, fs.Names()); diff != "" {
		t.Error(diff)
	}
	if r, ok := fs.First(FeatureRetries); !ok || r.Object() != "VirtualService shop/b" {
		t.Errorf("First: %v %v", r, ok)
	}
	if (FeatureRef{Kind: "CiliumClusterwideNetworkPolicy", Name: "x"}).Object() != "CiliumClusterwideNetworkPolicy x" {
		t.Error("cluster-scoped Object()")
	}
	if fs.String() != "http-routing=HTTPRoute shop/a, http-routing=VirtualService shop/b, retries=VirtualService shop/b" {
		t.Errorf("String() = %q", fs.String())
	}
}

// FuzzNodeLabels reads arbitrary agent node labels: never a panic; either an
// error naming the label, or capabilities with a known level.
func FuzzNodeLabels(f *testing.F) {
	f.Add("6.1.0-37-cloud-amd64", "full")
	f.Add("5.10", "basic")
	f.Add("", "")
	f.Add("6.", "none")
	f.Add("99999999.1", "full")
	f.Fuzz(func(t *testing.T, kernel, level string) {
		c, err := NodeCapabilitiesFromLabels(map[string]string{LabelNodeKernel: kernel, LabelNodeEBPFLevel: level})
		if err != nil {
			if c != (NodeCapabilities{}) {
				t.Fatalf("error with capabilities %+v", c)
			}
			return
		}
		if !c.Known || c.EBPF.Rank() < 0 {
			t.Fatalf("capabilities %+v from %q %q", c, kernel, level)
		}
		v, err := ParseKernelVersion(kernel)
		if err != nil || v != c.Kernel || !v.AtLeast(v) {
			t.Fatalf("kernel %q: %v %v", kernel, v, err)
		}
	})
}
