package realnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/test/image"
)

// Namespace is where the default overlay installs meshshift.
const Namespace = "meshshift-system"

// Options are a user's choices in the overlay over the shipped default.
type Options struct {
	// ManagerArgs are appended to the manager's arguments.
	ManagerArgs []string
	// AgentInterval, when set, replaces the agent's --interval=5s (how often
	// it reads the kernel counters).
	AgentInterval time.Duration
}

// overlay is a user's kustomization over the shipped default: the image
// built locally (never pulled), and the flags of opts.
func overlay(base string, opts Options) ([]byte, error) {
	managerArgs := opts.ManagerArgs
	args := make([]map[string]any, 0, len(managerArgs))
	for _, a := range managerArgs {
		args = append(args, map[string]any{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": a})
	}
	never := map[string]any{"op": "add", "path": "/spec/template/spec/containers/0/imagePullPolicy", "value": "Never"}
	patch := func(ops []map[string]any) (string, error) {
		b, err := yaml.Marshal(ops)
		return string(b), err
	}
	mgr, err := patch(append([]map[string]any{never}, args...))
	if err != nil {
		return nil, err
	}
	agentOps := []map[string]any{never}
	if opts.AgentInterval > 0 {
		// The test op makes the patch fail loudly if the shipped arguments move.
		const arg = "/spec/template/spec/containers/0/args/3"
		agentOps = append(agentOps,
			map[string]any{"op": "test", "path": arg, "value": "--interval=5s"},
			map[string]any{"op": "replace", "path": arg, "value": "--interval=" + opts.AgentInterval.String()})
	}
	agent, err := patch(agentOps)
	if err != nil {
		return nil, err
	}
	k := map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  []string{base},
		"images":     []map[string]string{{"name": image.MeshshiftRepo, "newTag": image.MeshshiftLocalTag}},
		"patches": []map[string]any{
			{"target": map[string]string{"kind": "Deployment", "name": "meshshift-manager"}, "patch": mgr},
			{"target": map[string]string{"kind": "DaemonSet", "name": "meshshift-agent"}, "patch": agent},
		},
	}
	return yaml.Marshal(k)
}

// Render builds config/default of the repository at root under a user's
// overlay (written into dir) with the kustomize library, as
// `kustomize build` does.
func Render(root, dir string, opts Options) ([]*unstructured.Unstructured, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("overlay folder: %w", err)
	}
	// kustomize takes bases by relative path only.
	base, err := filepath.Rel(abs, filepath.Join(root, "config", "default"))
	if err != nil {
		return nil, fmt.Errorf("overlay folder: %w", err)
	}
	b, err := overlay(base, opts)
	if err != nil {
		return nil, fmt.Errorf("write overlay: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create overlay folder: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), b, 0o644); err != nil {
		return nil, fmt.Errorf("write overlay: %w", err)
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build: %w", err)
	}
	var out []*unstructured.Unstructured
	for _, r := range m.Resources() {
		obj, err := r.Map()
		if err != nil {
			return nil, fmt.Errorf("kustomize build: %w", err)
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
	return out, nil
}

// operatorKinds are the Prometheus Operator's kinds in the default overlay.
// As its kustomization says, a cluster without the operator leaves them out
// ("drop ../prometheus"); Prometheus is then configured directly (see
// prometheus.go) with the scrape the ServiceMonitor describes.
var operatorKinds = map[string]bool{"ServiceMonitor": true, "PrometheusRule": true, "PodMonitor": true}

// Apply applies the rendered objects with server-side apply, CRDs first,
// and waits for the CRDs to be established.
func Apply(ctx context.Context, cl client.Client, objs []*unstructured.Unstructured) error {
	var crds, rest []*unstructured.Unstructured
	for _, o := range objs {
		switch {
		case operatorKinds[o.GetKind()]:
		case o.GetKind() == "CustomResourceDefinition":
			crds = append(crds, o)
		case o.GetKind() == "Namespace":
			crds = append(crds, o)
		default:
			rest = append(rest, o)
		}
	}
	for _, group := range [][]*unstructured.Unstructured{crds, rest} {
		for _, o := range group {
			if err := cl.Patch(ctx, o, client.Apply, client.FieldOwner("meshshift-install"), client.ForceOwnership); err != nil {
				return fmt.Errorf("apply %s %s: %w", o.GetKind(), o.GetName(), err)
			}
			if o.GetKind() == "CustomResourceDefinition" {
				if err := waitEstablished(ctx, cl, o.GetName()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, cl client.Client, name string) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := cl.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			return false, nil
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

// WaitReady waits for the manager Deployment and the agent DaemonSet to be
// ready and for the mutating webhook to answer through its Service: a
// dry-run pod gets meshshift's decision annotation.
func WaitReady(ctx context.Context, c *harness.Cluster) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		var dep appsv1.Deployment
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: "meshshift-manager"}, &dep); err != nil {
			return false, nil
		}
		var ds appsv1.DaemonSet
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: "meshshift-agent"}, &ds); err != nil {
			return false, nil
		}
		want := int32(1)
		if dep.Spec.Replicas != nil {
			want = *dep.Spec.Replicas
		}
		last = fmt.Sprintf("manager %d/%d ready, agent %d/%d ready; %s", dep.Status.ReadyReplicas, want,
			ds.Status.NumberReady, ds.Status.DesiredNumberScheduled, podStates(ctx, c.Client))
		return dep.Status.ReadyReplicas == want && ds.Status.DesiredNumberScheduled > 0 &&
			ds.Status.NumberReady == ds.Status.DesiredNumberScheduled, nil
	})
	if err != nil {
		return fmt.Errorf("wait for meshshift to be ready: %w (%s)", err, last)
	}
	probe := "meshshift-install-probe"
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: probe}}); client.IgnoreAlreadyExists(err) != nil {
		return fmt.Errorf("create probe namespace: %w", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: probe},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image.TestAppTag}}}}
		if err := c.Client.Create(ctx, p, client.DryRunAll); err != nil {
			last = err.Error()
			return false, nil
		}
		_, decided := p.Annotations["meshshift.io/decision"]
		last = fmt.Sprintf("dry-run pod annotations %v", p.Annotations)
		return decided, nil
	})
	if err != nil {
		return fmt.Errorf("the webhook never answered through its Service: %w (%s)", err, last)
	}
	return c.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: probe}})
}

// podStates sums up meshshift's pods for an error message.
func podStates(ctx context.Context, cl client.Client) string {
	var pods corev1.PodList
	if err := cl.List(ctx, &pods, client.InNamespace(Namespace)); err != nil {
		return err.Error()
	}
	var parts []string
	for _, p := range pods.Items {
		s := p.Name + ":" + string(p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			switch {
			case cs.State.Waiting != nil:
				s += "(" + cs.State.Waiting.Reason + " " + cs.State.Waiting.Message + ")"
			case cs.State.Terminated != nil:
				s += "(" + cs.State.Terminated.Reason + " " + cs.State.Terminated.Message + ")"
			}
			if t := cs.LastTerminationState.Terminated; t != nil {
				s += fmt.Sprintf(" last exit %d %s %q", t.ExitCode, t.Reason, t.Message)
			}
			s += fmt.Sprintf(" restarts=%d", cs.RestartCount)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
