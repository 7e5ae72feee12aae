package v1alpha1_test

import (
	"context"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/test/harness"
)

// TestCRDValidation creates CRs through the real API server: the CRDs' own
// schemas (generated from this package's markers) accept good objects, fill
// defaults, and reject bad ones with the field named.
func TestCRDValidation(t *testing.T) {
	c := harness.Start(t, harness.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("valid migration gets defaults", func(t *testing.T) {
		mm := &meshv1alpha1.MeshMigration{
			ObjectMeta: metav1.ObjectMeta{Name: "to-ambient"},
			Spec: meshv1alpha1.MeshMigrationSpec{
				TargetMode: meshv1alpha1.ModeAmbient,
				Waves: []meshv1alpha1.WaveSpec{
					{Name: "w1", Namespaces: []string{"a", "b"}},
					{Name: "w2", Namespaces: []string{"c"}},
				},
				Gate: &meshv1alpha1.GateSpec{SLIs: []meshv1alpha1.SLI{{Name: "errorRate", Max: "0.05"}}},
			},
		}
		if err := c.Client.Create(ctx, mm); err != nil {
			t.Fatalf("create valid migration: %v", err)
		}
		got := &meshv1alpha1.MeshMigration{}
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(mm), got); err != nil {
			t.Fatal(err)
		}
		if got.Spec.BakeTime == nil || got.Spec.BakeTime.Duration != 5*time.Minute {
			t.Errorf("bakeTime default = %v, want 5m", got.Spec.BakeTime)
		}
		if got.Spec.Approval != meshv1alpha1.ApprovalAutomatic {
			t.Errorf("approval default = %q, want Automatic", got.Spec.Approval)
		}
		if got.Spec.PolicyMigration != meshv1alpha1.PolicyMigrationPropose || got.Spec.OriginalPolicies != meshv1alpha1.OriginalPoliciesKeep {
			t.Errorf("policyMigration, originalPolicies defaults = %q, %q, want Propose, Keep", got.Spec.PolicyMigration, got.Spec.OriginalPolicies)
		}
		if got.Spec.Gate.FailuresToBreach != 3 || got.Spec.Gate.Interval.Duration != 30*time.Second {
			t.Errorf("gate defaults = %+v, want failuresToBreach 3, interval 30s", got.Spec.Gate)
		}
	})

	invalid := []struct {
		name string
		spec meshv1alpha1.MeshMigrationSpec
		want string // a part of the API server's message, naming the field
	}{
		{
			name: "wave with no namespaces",
			spec: meshv1alpha1.MeshMigrationSpec{TargetMode: meshv1alpha1.ModeAmbient, Waves: []meshv1alpha1.WaveSpec{{Name: "w1", Namespaces: []string{}}}},
			want: "spec.waves[0].namespaces",
		},
		{
			name: "unknown target mode",
			spec: meshv1alpha1.MeshMigrationSpec{TargetMode: "sidecarless", Namespaces: &meshv1alpha1.NamespaceTarget{Names: []string{"a"}}},
			want: `spec.targetMode: Unsupported value: "sidecarless"`,
		},
		{
			name: "no namespaces at all",
			spec: meshv1alpha1.MeshMigrationSpec{TargetMode: meshv1alpha1.ModeAmbient},
			want: "namespaces is required unless explicit waves list them",
		},
		{
			name: "waves and batch size together",
			spec: meshv1alpha1.MeshMigrationSpec{
				TargetMode: meshv1alpha1.ModeAmbient,
				Waves:      []meshv1alpha1.WaveSpec{{Name: "w1", Namespaces: []string{"a"}}},
				BatchSize:  ptrIntStr(intstr.FromInt32(2)),
			},
			want: "waves and batchSize are exclusive",
		},
		{
			name: "remove originals without apply",
			spec: meshv1alpha1.MeshMigrationSpec{
				TargetMode:       meshv1alpha1.ModeAmbientWaypoint,
				Namespaces:       &meshv1alpha1.NamespaceTarget{Names: []string{"a"}},
				OriginalPolicies: meshv1alpha1.OriginalPoliciesRemove,
			},
			want: "originalPolicies Remove needs policyMigration Apply",
		},
		{
			name: "unknown policy migration",
			spec: meshv1alpha1.MeshMigrationSpec{
				TargetMode:      meshv1alpha1.ModeAmbientWaypoint,
				Namespaces:      &meshv1alpha1.NamespaceTarget{Names: []string{"a"}},
				PolicyMigration: "Rewrite",
			},
			want: "spec.policyMigration: Unsupported value",
		},
		{
			name: "batch percentage over 100",
			spec: meshv1alpha1.MeshMigrationSpec{
				TargetMode: meshv1alpha1.ModeCilium,
				Namespaces: &meshv1alpha1.NamespaceTarget{Names: []string{"a"}},
				BatchSize:  ptrIntStr(intstr.FromString("150%")),
			},
			want: "spec.batchSize: Invalid value",
		},
		{
			name: "sli with no limit",
			spec: meshv1alpha1.MeshMigrationSpec{
				TargetMode: meshv1alpha1.ModeAmbient,
				Namespaces: &meshv1alpha1.NamespaceTarget{Names: []string{"a"}},
				Gate:       &meshv1alpha1.GateSpec{SLIs: []meshv1alpha1.SLI{{Name: "errorRate"}}},
			},
			want: "an SLI needs max, maxIncrease, or both",
		},
		{
			name: "sli limit not a decimal",
			spec: meshv1alpha1.MeshMigrationSpec{
				TargetMode: meshv1alpha1.ModeAmbient,
				Namespaces: &meshv1alpha1.NamespaceTarget{Names: []string{"a"}},
				Gate:       &meshv1alpha1.GateSpec{SLIs: []meshv1alpha1.SLI{{Name: "errorRate", Max: "5%"}}},
			},
			want: "spec.gate.slis[0].max",
		},
	}
	for i, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			mm := &meshv1alpha1.MeshMigration{ObjectMeta: metav1.ObjectMeta{Name: "bad-" + string(rune('a'+i))}, Spec: tc.spec}
			err := c.Client.Create(ctx, mm)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create = %v, want an Invalid error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}

	t.Run("policy rule with bad name and mode", func(t *testing.T) {
		p := &meshv1alpha1.DataplanePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "bad-policy"},
			Spec:       meshv1alpha1.DataplanePolicySpec{Rules: []meshv1alpha1.Rule{{Name: "Not_A_Name", When: "true", Mode: "proxyless"}}},
		}
		err := c.Client.Create(ctx, p)
		if !apierrors.IsInvalid(err) {
			t.Fatalf("create = %v, want an Invalid error", err)
		}
		for _, want := range []string{"spec.rules[0].name", "spec.rules[0].mode"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		}
	})

	t.Run("print columns", func(t *testing.T) {
		for name, want := range map[string][]string{
			"meshmigrations.meshshift.io":    {"Target", "Wave", "Progressing", "Succeeded", "Paused", "Age"},
			"dataplanepolicies.meshshift.io": {"Default", "Provider", "Ready", "Age"},
		} {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := c.Client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
				t.Fatalf("get crd %s: %v", name, err)
			}
			var got []string
			for _, col := range crd.Spec.Versions[0].AdditionalPrinterColumns {
				got = append(got, col.Name)
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s print columns = %v, want %v", name, got, want)
			}
			if crd.Spec.Scope != apiextensionsv1.ClusterScoped {
				t.Errorf("%s scope = %s, want Cluster", name, crd.Spec.Scope)
			}
		}
	})
}

func ptrIntStr(v intstr.IntOrString) *intstr.IntOrString { return &v }
