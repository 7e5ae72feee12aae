package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/migrator/l7policy"
	"github.com/meshshift/meshshift/policies"
)

// DefaultEmitMigration labels emitted objects (l7policy.LabelMigration) when
// plan is not given a MeshMigration name.
const DefaultEmitMigration = "meshshift-plan"

// NamespacePolicies is the L7 policy move of one namespace: its workloads
// that go to ambient-waypoint and what l7policy.Propose makes of the
// policies that select them.
type NamespacePolicies struct {
	Namespace string
	Waypoint  string
	// Workloads are "<Kind>/<name>" of the namespace's moving workloads.
	Workloads []string
	Plan      *l7policy.Plan
	// sources say where each object was read.
	sources map[*unstructured.Unstructured]Source
}

// ProposePolicies runs l7policy.Propose for every namespace in which the
// plan moves workloads from another mode to ambient-waypoint (their L7
// policies moving to the waypoint, or the namespace's decision), over those
// workloads, the namespace's Services and the AuthorizationPolicies and
// RequestAuthentications of the namespace and of Istio's root namespace
// (istio-system). Objects a copy or an admit policy makes are labelled with
// migration. Namespaces are sorted by name; one without anything to move,
// admit or block is left out.
func ProposePolicies(inv *Inventory, o *Options, migration string) ([]*NamespacePolicies, error) {
	return proposePolicies(inv, o, inv.Evaluate(o), migration)
}

// proposePolicies is ProposePolicies over the workloads' evaluations the
// caller already has (inv.Evaluate(o)).
func proposePolicies(inv *Inventory, o *Options, evals []Evaluated, migration string) ([]*NamespacePolicies, error) {
	type nsMove struct {
		waypoints map[string]bool
		workloads []l7policy.Workload
	}
	moving := map[string]*nsMove{}
	for _, e := range evals {
		d := e.Decision
		if moved, ok := policyMove(&e, o); ok {
			d = moved
		}
		if d.Excluded || d.Mode != meshv1alpha1.ModeAmbientWaypoint || e.Current == meshv1alpha1.ModeAmbientWaypoint {
			continue
		}
		m := moving[e.W.Namespace]
		if m == nil {
			m = &nsMove{waypoints: map[string]bool{}}
			moving[e.W.Namespace] = m
		}
		m.waypoints[waypointOf(&d)] = true
		m.workloads = append(m.workloads, l7policy.Workload{Kind: e.W.Kind, Name: e.W.Name, PodLabels: e.W.Template.Labels})
	}
	names := make([]string, 0, len(moving))
	for ns := range moving {
		names = append(names, ns)
	}
	sort.Strings(names)
	// The Services and Istio policies among the objects, by namespace (in
	// the objects' order), read once rather than once per namespace.
	var byNS map[string][]int
	if len(names) > 0 {
		byNS = map[string][]int{}
		for i := range inv.Objects {
			u := inv.Objects[i].U
			gv, kind := u.GetAPIVersion(), u.GetKind()
			if (gv == "v1" && kind == "Service") ||
				(strings.HasPrefix(gv, "security.istio.io/") && (kind == l7policy.KindAuthorizationPolicy || kind == l7policy.KindRequestAuthentication)) {
				ns := u.GetNamespace()
				byNS[ns] = append(byNS[ns], i)
			}
		}
	}
	var out []*NamespacePolicies
	for _, ns := range names {
		m := moving[ns]
		wps := make([]string, 0, len(m.waypoints))
		for w := range m.waypoints {
			wps = append(wps, w)
		}
		sort.Strings(wps)
		if len(wps) > 1 {
			return nil, fmt.Errorf("namespace %s: its workloads use waypoints %s; emitting policies handles one waypoint per namespace", ns, strings.Join(wps, ", "))
		}
		np := &NamespacePolicies{Namespace: ns, Waypoint: wps[0], sources: map[*unstructured.Unstructured]Source{}}
		in := l7policy.Input{Namespace: ns, RootNamespace: l7policy.DefaultRootNamespace, Waypoint: wps[0], Migration: migration, Workloads: m.workloads}
		for _, i := range mergeSorted(byNS[ns], byNS[in.RootNamespace], ns == in.RootNamespace) {
			obj := &inv.Objects[i]
			u := obj.U
			gv, kind, objNS := u.GetAPIVersion(), u.GetKind(), u.GetNamespace()
			switch {
			case gv == "v1" && kind == "Service" && objNS == ns:
				in.Services = append(in.Services, u)
			case strings.HasPrefix(gv, "security.istio.io/") && (kind == l7policy.KindAuthorizationPolicy || kind == l7policy.KindRequestAuthentication) &&
				(objNS == ns || objNS == in.RootNamespace):
				in.Policies = append(in.Policies, u)
			default:
				continue
			}
			np.sources[u] = obj.Source
		}
		for _, w := range m.workloads {
			np.Workloads = append(np.Workloads, w.Kind+"/"+w.Name)
		}
		p, err := l7policy.Propose(in)
		if err != nil {
			return nil, fmt.Errorf("propose policies for namespace %s: %w", ns, err)
		}
		np.Plan = p
		if len(p.Moves)+len(p.Admit)+len(p.Blocked) > 0 {
			out = append(out, np)
		}
	}
	return out, nil
}

// mergeSorted merges two ascending index lists (only a when same).
func mergeSorted(a, b []int, same bool) []int {
	if same || len(b) == 0 {
		return a
	}
	out := make([]int, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0] < b[0] {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// waypointOf is the waypoint Gateway a decision names, or the namespace's
// default one.
func waypointOf(d *policies.Decision) string {
	if d.Waypoint != "" {
		return d.Waypoint
	}
	return "waypoint"
}

// EmittedFile is one file WritePolicies writes.
type EmittedFile struct {
	// Path is relative to the folder: "<namespace>/<role>.<kind>.<name>.yaml".
	Path string
	Data []byte
}

// EmitPolicies renders the proposals as YAML files, one object each with a
// leading comment naming its source object: the targetRefs copies
// (copy.*), the narrowed originals (narrowed.*), the admit policies and L4
// copies (admit.*), and per namespace a blocked.txt listing what cannot move.
// Server-set metadata (resourceVersion, uid, generation, creationTimestamp,
// managedFields, kubectl's last-applied annotation) and status are left out,
// so the files can be applied or committed for review.
func EmitPolicies(ps []*NamespacePolicies) ([]EmittedFile, error) {
	var out []EmittedFile
	for _, np := range ps {
		add := func(role string, u *unstructured.Unstructured, comment ...string) error {
			b, err := objectYAML(u)
			if err != nil {
				return fmt.Errorf("encode %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
			var hdr strings.Builder
			for _, c := range comment {
				hdr.WriteString("# " + c + "\n")
			}
			path := filepath.Join(np.Namespace, role+"."+strings.ToLower(u.GetKind())+"."+u.GetName()+".yaml")
			out = append(out, EmittedFile{Path: path, Data: append([]byte(hdr.String()), b...)})
			return nil
		}
		for _, m := range np.Plan.Moves {
			src := np.describe(m.Source)
			if err := add("copy", m.Copy,
				"targetRefs copy of "+src+", enforced by waypoint "+np.Namespace+"/"+np.Waypoint+".",
				m.Why); err != nil {
				return nil, err
			}
			what := "it selects only pods still on a sidecar and lets the waypoint's identity through where the waypoint has already decided;"
			if m.Source.GetKind() == l7policy.KindRequestAuthentication {
				what = "it selects only pods still on a sidecar;"
			}
			if err := add("narrowed", m.Narrowed, "narrowed original of "+src+": "+what,
				"annotation "+l7policy.AnnotationOriginal+" holds the original spec (rollback restores it exactly)."); err != nil {
				return nil, err
			}
		}
		for _, a := range np.Plan.Admit {
			src := np.sourceOf(a)
			c := "ztunnel admit policy for " + src + ": the waypoint's identity is allowed on the moved pods for what the policy allows."
			if _, targeted := a.Object["spec"].(map[string]interface{})["targetRefs"]; targeted {
				c = "targetRefs copy of " + src + ": waypoint " + np.Namespace + "/" + np.Waypoint + " checks the caller ztunnel no longer sees."
				if a.GetKind() == l7policy.KindRequestAuthentication {
					c = "targetRefs copy of " + src + " for waypoint " + np.Namespace + "/" + np.Waypoint + ", which reads no policy without targetRefs; the original stays."
				}
			}
			if err := add("admit", a, c); err != nil {
				return nil, err
			}
		}
		if len(np.Plan.Blocked) > 0 {
			var b strings.Builder
			fmt.Fprintf(&b, "# Policies of namespace %s that cannot move to waypoint %s; the workloads they name must not move yet.\n", np.Namespace, np.Waypoint)
			for _, l := range np.Plan.Blocked {
				b.WriteString(l + "\n")
			}
			out = append(out, EmittedFile{Path: filepath.Join(np.Namespace, "blocked.txt"), Data: []byte(b.String())})
		}
	}
	return out, nil
}

// describe names an object read, with where it was read.
func (np *NamespacePolicies) describe(u *unstructured.Unstructured) string {
	s := u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
	if src, ok := np.sources[u]; ok {
		if where := src.String(); where != "" {
			s += " (" + where + ")"
		}
	}
	return s
}

// sourceOf names the object an admit policy was made from.
func (np *NamespacePolicies) sourceOf(u *unstructured.Unstructured) string {
	ref := u.GetAnnotations()[l7policy.AnnotationSource]
	for src := range np.sources {
		if src.GetKind()+"/"+src.GetNamespace()+"/"+src.GetName() == ref {
			return np.describe(src)
		}
	}
	return strings.ReplaceAll(ref, "/", " ")
}

func objectYAML(u *unstructured.Unstructured) ([]byte, error) {
	c := u.DeepCopy()
	for _, f := range []string{"resourceVersion", "uid", "generation", "creationTimestamp", "managedFields", "selfLink"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	delete(c.Object, "status")
	if ann := c.GetAnnotations(); ann != nil {
		delete(ann, "kubectl.kubernetes.io/last-applied-configuration")
		if len(ann) == 0 {
			unstructured.RemoveNestedField(c.Object, "metadata", "annotations")
		} else {
			c.SetAnnotations(ann)
		}
	}
	return yaml.Marshal(c.Object)
}

// WritePolicies writes the files under dir, creating the namespace folders.
// It refuses to overwrite a file that is there already, so an earlier run's
// proposal is never mixed with this one's.
func WritePolicies(dir string, files []EmittedFile) error {
	if dir == "" {
		return errors.New("emit policies: no folder given")
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("emit policies: %w", err)
		}
		fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("emit policies: %w", err)
		}
		_, werr := fh.Write(f.Data)
		if cerr := fh.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("emit policies: write %s: %w", p, werr)
		}
	}
	return nil
}
