package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

func TestSplitDocumentsKeepsLines(t *testing.T) {
	in := "# head\na: 1\n---\nb: 2\n--- # comment\n\nc: 3\n---\n"
	var got []int
	for _, d := range splitDocuments([]byte(in)) {
		got = append(got, d.line)
	}
	if diff := cmp.Diff([]int{1, 4, 6, 9}, got); diff != "" {
		t.Errorf("document start lines (-want +got):\n%s", diff)
	}
}

func TestParseManifests(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		objects []string // Ref() of each object
		err     string   // substring of the error, "" for none
	}{
		{name: "empty and comments", in: "# nothing\n---\n\n---\n# still nothing\n"},
		{name: "list expanded", in: `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: a}
- apiVersion: v1
  kind: Service
  metadata: {name: s, namespace: a}
`, objects: []string{"Namespace a", "Service a/s"}},
		{name: "json", in: `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "j"}}`, objects: []string{"Namespace j"}},
		{name: "no kind", in: "apiVersion: v1\nmetadata: {name: a}\n", err: "f.yaml:1 (document 1): field kind: required"},
		{name: "kind not a string", in: "apiVersion: v1\nkind: 3\nmetadata: {name: a}\n", err: "field kind: must be a non-empty string"},
		{name: "name not a string", in: "apiVersion: v1\nkind: Namespace\nmetadata: {name: [a]}\n", err: "Namespace: field metadata.name: must be a non-empty string"},
		{name: "generateName only", in: "apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\n", err: "Pod web-*: field metadata.name: required: generateName alone"},
		{name: "second document bad", in: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: x: y\n", objects: []string{"Namespace a"},
			err: "f.yaml:5 (document 2): not valid YAML"},
		{name: "bad list item", in: "apiVersion: v1\nkind: List\nitems:\n- kind: Namespace\n  metadata: {name: b}\n", err: "field apiVersion: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := ParseManifests("f.yaml", []byte(tc.in))
			var refs []string
			for i := range objs {
				refs = append(refs, objs[i].Ref())
			}
			if diff := cmp.Diff(tc.objects, refs); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want it to contain %q", err, tc.err)
			}
			var me *ManifestError
			if err != nil && !errors.As(err, &me) {
				t.Errorf("error %v is not a *ManifestError", err)
			}
		})
	}
}

func build(t *testing.T, in string) (*Inventory, error) {
	t.Helper()
	objs, err := ParseManifests("in.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	return Build(objs)
}

func TestBuildInventory(t *testing.T) {
	inv, err := build(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: x}]}
---
# one of web's pods: covered by the Deployment
apiVersion: v1
kind: Pod
metadata:
  name: web-5d4f8-abcde
  labels: {app: web, pod-template-hash: 5d4f8}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-5d4f8, uid: u1, controller: true}]
spec: {containers: [{name: app, image: x}]}
---
# a bare pod is its own workload
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: tools}
spec: {containers: [{name: app, image: x}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ztunnel, namespace: mesh}
spec:
  selector: {matchLabels: {app: ztunnel}}
  template:
    metadata: {labels: {app: ztunnel}}
    spec: {containers: [{name: z, image: x}]}
---
apiVersion: v1
kind: Node
metadata:
  name: n1
  labels: {meshshift.io/kernel: "6.1.0", meshshift.io/ebpf-level: full}
---
apiVersion: v1
kind: Node
metadata:
  name: n2
  labels: {meshshift.io/kernel: "5.15.3", meshshift.io/ebpf-level: basic}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range inv.Workloads {
		got = append(got, w.Kind+" "+w.Key()+" "+fmt.Sprint(w.Replicas))
	}
	want := []string{"Deployment default/web 2", "DaemonSet mesh/ztunnel 2", "Pod tools/debug 1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("workloads (-want +got):\n%s", diff)
	}
	c := inv.Capabilities
	if !c.Ztunnel || c.Cilium || !c.Nodes.Known || c.Nodes.EBPF != "basic" || c.Nodes.Kernel.String() != "5.15.3" {
		t.Errorf("capabilities %+v: want ztunnel, the weakest node (5.15.3, basic)", c)
	}
	if diff := cmp.Diff([]string{"mesh"}, c.MeshNamespaces); diff != "" {
		t.Errorf("mesh namespaces (-want +got):\n%s", diff)
	}
	if len(inv.Notes) != 1 || !strings.Contains(inv.Notes[0], "skipped 1 Secret object(s)") {
		t.Errorf("notes %q, want one about the Secret", inv.Notes)
	}
	for _, ns := range []string{"default", "tools", "mesh"} {
		if inv.Namespaces[ns] == nil {
			t.Errorf("namespace %s of a workload is missing from the inventory", ns)
		}
	}
}

func TestBuildRejects(t *testing.T) {
	for _, tc := range []struct{ name, in, err string }{
		{"duplicate workload", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: a}\n",
			"in.yaml:5 (document 2): StatefulSet default/a: field metadata.name: a workload named default/a is already defined at in.yaml:1"},
		{"namespace on a cluster-scoped kind", "apiVersion: v1\nkind: Node\nmetadata: {name: node-1, namespace: x}\n",
			"Node x/node-1: field metadata.namespace: Node is cluster-scoped"},
		{"bad node label", "apiVersion: v1\nkind: Node\nmetadata: {name: node-1, labels: {meshshift.io/ebpf-level: lots}}\n",
			"Node node-1: field metadata.labels: label meshshift.io/ebpf-level"},
		{"istio bad enum reported with the fatal ones", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec: {mtls: {mode: SOMETIMES}}\n" +
			"---\napiVersion: v1\nkind: Node\nmetadata: {name: node-1, namespace: x}\n",
			`PeerAuthentication default/p: field spec.mtls.mode: unknown value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := build(t, tc.in)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want it to contain %q", err, tc.err)
			}
		})
	}
}

func TestLoadTraffic(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "t.yaml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s, err := LoadTraffic(write("time: 2026-01-01T00:00:00Z\nworkloads:\n- {namespace: a, workload: w, requestRate: 5, p99Latency: 12ms, protocols: [http2]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := s.Lookup("a", "w")
	if !ok || tr.RequestRate != 5 || tr.P99Latency != 12*time.Millisecond || tr.Window != time.Minute || !tr.SampleTime.Equal(s.Time) {
		t.Errorf("traffic %+v", tr)
	}
	for in, want := range map[string]string{
		"workloads:\n- {namespace: a}\n":                                "field workloads[0]: namespace and workload are required",
		"workloads:\n- {namespace: a, workload: w, errorRate: 2}\n":     "field workloads[0].errorRate: 2 is not a fraction",
		"workloads:\n- {namespace: a, workload: w, protocols: [ftp]}\n": `field workloads[0].protocols: "ftp" is not one of`,
		"workload: []\n": `unknown field "workload"`,
	} {
		if _, err := LoadTraffic(write(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadTraffic(%q): error %v, want %q", in, err, want)
		}
	}
}

func TestApproveChange(t *testing.T) {
	mm := &meshv1alpha1.MeshMigration{Spec: meshv1alpha1.MeshMigrationSpec{Approval: meshv1alpha1.ApprovalManual,
		Waves: []meshv1alpha1.WaveSpec{{Name: "a"}, {Name: "b"}}}}
	for _, step := range []struct {
		through int32
		want    int32
		msg     string
	}{{0, 1, "approved waves 1-1"}, {0, 2, "approved waves 1-2"}, {1, 2, "already approved"}} {
		msg, err := Approve(step.through)(mm)
		if err != nil || mm.Spec.ApprovedWaves != step.want || !strings.Contains(msg, step.msg) {
			t.Errorf("approve --through %d: %q %v, approvedWaves %d; want %d, %q", step.through, msg, err, mm.Spec.ApprovedWaves, step.want, step.msg)
		}
	}
	if _, err := Approve(0)(mm); err == nil || !strings.Contains(err.Error(), "has 2 wave(s)") {
		t.Errorf("approving a third wave of two: %v", err)
	}
}
