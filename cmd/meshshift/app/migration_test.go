package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/cmd/meshshift/app"
	"github.com/meshshift/meshshift/test/harness"
)

// run runs the CLI in process and returns its exit code and output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := app.Run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := run(t, args...)
	if code != app.ExitOK {
		t.Fatalf("meshshift %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// TestMigrationCommandsAgainstAPIServer drives status, pause, resume, approve
// and rollback against the real API server and checks what they wrote.
func TestMigrationCommandsAgainstAPIServer(t *testing.T) {
	c := harness.Start(t, harness.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kc := c.Kubeconfig

	// No migration yet.
	if out := mustRun(t, "status", "--kubeconfig", kc); !strings.Contains(out, "No MeshMigration found.") {
		t.Errorf("status with no migration printed:\n%s", out)
	}
	if out := mustRun(t, "status", "--kubeconfig", kc, "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("status -o json with no migration printed %q, want []", out)
	}

	mm := &meshv1alpha1.MeshMigration{
		ObjectMeta: metav1.ObjectMeta{Name: "to-ambient"},
		Spec: meshv1alpha1.MeshMigrationSpec{
			TargetMode: meshv1alpha1.ModeAmbient,
			Approval:   meshv1alpha1.ApprovalManual,
			Waves: []meshv1alpha1.WaveSpec{
				{Name: "wave-1", Namespaces: []string{"catalog", "search"}},
				{Name: "wave-2", Namespaces: []string{"shop"}},
				{Name: "wave-3", Namespaces: []string{"payments"}},
			},
		},
	}
	if err := c.Client.Create(ctx, mm); err != nil {
		t.Fatal(err)
	}
	// A status as the migrator writes it: wave 1 baking with a failing check.
	now := metav1.Now()
	mm.Status = meshv1alpha1.MeshMigrationStatus{
		ObservedGeneration: mm.Generation,
		CurrentWave:        0,
		Waves: []meshv1alpha1.WaveStatus{{
			Name: "wave-1", Namespaces: []string{"catalog", "search"}, Phase: meshv1alpha1.WaveBaking, StartedAt: &now,
			Baseline: []meshv1alpha1.SLIValue{{Name: "errorRate", Value: "0.001"}},
			LastGate: []meshv1alpha1.SLIValue{{Name: "errorRate", Value: "0.09", Limit: "0.05", Result: "Fail", Message: "above max"}},
			Failures: 1, Message: "baking",
		}},
	}
	meta.SetStatusCondition(&mm.Status.Conditions, metav1.Condition{Type: "Progressing", Status: metav1.ConditionTrue,
		Reason: "WaveBaking", Message: "wave 1 of 3 is baking", ObservedGeneration: mm.Generation})
	if err := c.Client.Status().Update(ctx, mm); err != nil {
		t.Fatal(err)
	}

	list := mustRun(t, "status", "--kubeconfig", kc)
	for _, want := range []string{"NAME", "to-ambient", "ambient", "1/1 wave-1 Baking"} {
		if !strings.Contains(list, want) {
			t.Errorf("status list lacks %q:\n%s", want, list)
		}
	}
	detail := mustRun(t, "status", "to-ambient", "--kubeconfig", kc)
	for _, want := range []string{"MeshMigration to-ambient → ambient", "approval Manual, approved waves 0",
		"Progressing", "WaveBaking", "wave 1 of 3 is baking", "catalog,search", "Baking",
		"Gate of wave 1 (wave-1):", "errorRate", "0.001", "0.09", "0.05", "Fail", "above max"} {
		if !strings.Contains(detail, want) {
			t.Errorf("status to-ambient lacks %q:\n%s", want, detail)
		}
	}
	var got meshv1alpha1.MeshMigration
	if err := json.Unmarshal([]byte(mustRun(t, "status", "to-ambient", "--kubeconfig", kc, "-o", "json")), &got); err != nil {
		t.Fatalf("status -o json: %v", err)
	}
	if got.Name != "to-ambient" || len(got.Status.Waves) != 1 || got.Status.Waves[0].LastGate[0].Value != "0.09" {
		t.Errorf("status -o json decoded to %+v", got)
	}

	read := func() *meshv1alpha1.MeshMigration {
		t.Helper()
		var m meshv1alpha1.MeshMigration
		if err := c.Client.Get(ctx, client.ObjectKey{Name: "to-ambient"}, &m); err != nil {
			t.Fatal(err)
		}
		return &m
	}

	steps := []struct {
		args  []string
		out   string
		check func(*meshv1alpha1.MeshMigration) bool
	}{
		{[]string{"pause", "to-ambient"}, "meshmigration to-ambient: paused", func(m *meshv1alpha1.MeshMigration) bool { return m.Spec.Paused }},
		{[]string{"pause", "to-ambient"}, "already paused", func(m *meshv1alpha1.MeshMigration) bool { return m.Spec.Paused }},
		{[]string{"resume", "to-ambient"}, "resumed", func(m *meshv1alpha1.MeshMigration) bool { return !m.Spec.Paused }},
		{[]string{"approve", "to-ambient"}, "approved waves 1-1", func(m *meshv1alpha1.MeshMigration) bool { return m.Spec.ApprovedWaves == 1 }},
		{[]string{"approve", "to-ambient"}, "approved waves 1-2", func(m *meshv1alpha1.MeshMigration) bool { return m.Spec.ApprovedWaves == 2 }},
		{[]string{"approve", "to-ambient", "--through", "3"}, "approved waves 1-3", func(m *meshv1alpha1.MeshMigration) bool { return m.Spec.ApprovedWaves == 3 }},
		{[]string{"rollback", "to-ambient"}, "rollback requested", func(m *meshv1alpha1.MeshMigration) bool { return m.Spec.RollbackRequested && !m.Spec.Paused }},
	}
	for _, s := range steps {
		out := mustRun(t, append(s.args, "--kubeconfig", kc)...)
		if !strings.Contains(out, s.out) {
			t.Errorf("meshshift %s printed %q, want it to contain %q", strings.Join(s.args, " "), out, s.out)
		}
		if m := read(); !s.check(m) {
			t.Errorf("after meshshift %s the spec is %+v", strings.Join(s.args, " "), m.Spec)
		}
	}
	if m := read(); m.Spec.TargetMode != meshv1alpha1.ModeAmbient || len(m.Spec.Waves) != 3 || len(m.Status.Waves) != 1 {
		t.Errorf("the commands changed more than their field: %+v", m)
	}

	// Errors: a wave beyond the last, a missing migration.
	code, _, errOut := run(t, "approve", "to-ambient", "--through", "4", "--kubeconfig", kc)
	if code != app.ExitError || !strings.Contains(errOut, "the migration has 3 wave(s)") {
		t.Errorf("approve --through 4: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = run(t, "pause", "nope", "--kubeconfig", kc)
	if code != app.ExitError || !strings.Contains(errOut, "meshmigration nope not found") {
		t.Errorf("pause nope: exit %d, stderr %q", code, errOut)
	}
}
