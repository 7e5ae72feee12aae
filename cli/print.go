package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Output formats every command takes with -o.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatYAML  = "yaml"
)

// CheckFormat validates an -o value.
func CheckFormat(f string) error {
	switch f {
	case FormatTable, FormatJSON, FormatYAML:
		return nil
	}
	return fmt.Errorf("output format %q: want table, json or yaml", f)
}

// PrintData writes v as indented JSON or as YAML.
func PrintData(w io.Writer, format string, v any) error {
	switch format {
	case FormatJSON:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		_, err = w.Write(append(b, '\n'))
		return err
	case FormatYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("output format %q is not json or yaml", format)
}

// PrintPlan writes a plan. JSON and YAML print the rows (an array of objects
// with namespace, workload, kind, mode, rule and reason, and each row's wave);
// the table adds the proposed waves.
func PrintPlan(w io.Writer, format string, p *Plan) error {
	if format != FormatTable {
		rows := p.Rows
		if rows == nil {
			rows = []Row{}
		}
		return PrintData(w, format, rows)
	}
	o := &out{w: w}
	tw := newTable(w)
	tw.ln("NAMESPACE\tWORKLOAD\tKIND\tCURRENT\tDECIDED\tWAVE\tRULE\tREASON")
	for _, r := range p.Rows {
		wave := "-"
		if r.Wave > 0 {
			wave = fmt.Sprint(r.Wave)
		}
		tw.f("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Workload, r.Kind, r.CurrentMode, r.Mode, wave, r.Rule, r.Reason)
	}
	if err := tw.flush(); err != nil {
		return err
	}
	o.ln()
	for _, b := range p.Blocked {
		o.f("Blocked, left out of the waves: namespace %s\n", b.Namespace)
		for _, r := range b.Reasons {
			o.f("  - %s\n", r)
		}
	}
	if len(p.Blocked) > 0 {
		o.ln()
	}
	if len(p.Waves) == 0 {
		o.ln("No wave proposed: no workload changes mode.")
		return o.err
	}
	o.ln("Proposed waves (lowest risk, then most sidecar resources freed, first):")
	tw = newTable(w)
	tw.ln("WAVE\tNAMESPACES\tWORKLOADS\tRISK\tCPU FREED\tMEMORY FREED")
	for _, wv := range p.Waves {
		tw.f("%d\t%s\t%d\t%d\t%s\t%s\n", wv.Index, strings.Join(wv.Namespaces, ","), wv.Workloads, wv.Risk,
			wv.FreedCPU.String(), wv.FreedMemory.String())
	}
	if err := tw.flush(); err != nil {
		return err
	}
	return o.err
}

// PrintExplanation writes one workload's decision path.
func PrintExplanation(w io.Writer, format string, e *Explanation) error {
	if format != FormatTable {
		return PrintData(w, format, e)
	}
	o := &out{w: w}
	o.f("%s %s/%s (%s)\n", e.Kind, e.Namespace, e.Workload, e.Source)
	o.f("  decided: %s by %s\n  reason:  %s\n", e.Decision.Mode, e.Decision.Rule, e.Decision.Reason)
	if e.Restart != "" {
		o.f("  restart: %s\n", e.Restart)
	}
	o.ln("\nInputs:")
	in := &e.Inputs
	o.f("  current mode:          %s (%s)\n", in.CurrentMode, in.CurrentModeSource)
	o.f("  pod labels:            %s\n", kv(in.PodLabels))
	o.f("  pod annotations:       %s\n", kv(in.PodAnnotations))
	o.f("  hostNetwork:           %t\n", in.HostNetwork)
	o.f("  namespace labels:      %s\n", kv(in.NamespaceLabels))
	ann := kv(in.NamespaceAnnotations)
	if in.TargetSimulated {
		ann += " (mode annotation simulated by --target)"
	}
	o.f("  namespace annotations: %s\n", ann)
	o.f("  policy:                %s\n", in.Policy)
	o.f("  capabilities:          %s\n", in.Capabilities)
	o.f("  traffic:               %s\n", in.Traffic)
	if len(in.Features) == 0 {
		o.ln("  mesh features:         none")
	} else {
		o.ln("  mesh features:")
		for _, f := range in.Features {
			o.f("    - %s: %s, needs %s\n", f.Object, f.Feature, f.Need)
		}
	}
	o.ln("\nDecision path (first match wins):")
	for _, s := range e.Steps {
		o.f("  %d. %-22s %-12s %s\n", s.N, s.Name, s.Status, s.Detail)
	}
	d := &e.Decision
	o.ln("\nWrites on the pods:")
	o.f("  labels:      %s\n", kv(d.Labels))
	if len(d.LabelsToRemove) > 0 {
		o.f("  remove:      %s\n", strings.Join(d.LabelsToRemove, ", "))
	}
	o.f("  annotations: %s\n", kv(d.Annotations))
	printPolicyMove(o, e.PolicyMove)
	for _, warn := range d.Warnings {
		o.f("warning: %s\n", warn)
	}
	return o.err
}

func kv(m map[string]string) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ", ")
}

// PrintPrecheck writes the findings.
func PrintPrecheck(w io.Writer, format string, r *PrecheckResult) error {
	if format != FormatTable {
		if r.Findings == nil {
			r.Findings = []Finding{}
		}
		return PrintData(w, format, r)
	}
	o := &out{w: w}
	if len(r.Findings) > 0 {
		tw := newTable(w)
		tw.ln("SEVERITY\tCHECK\tWORKLOAD\tOBJECT\tMESSAGE")
		for _, f := range r.Findings {
			wl := "-"
			if f.Workload != "" {
				wl = f.Namespace + "/" + f.Workload
			}
			obj := f.Object
			if obj == "" {
				obj = "-"
			}
			tw.f("%s\t%s\t%s\t%s\t%s\n", f.Severity, f.Check, wl, obj, f.Message)
		}
		if err := tw.flush(); err != nil {
			return err
		}
		o.ln()
	}
	verdict := "ready"
	if r.Blockers > 0 {
		verdict = "blocked"
	}
	o.f("precheck toward %s: %s (%d blocker(s), %d warning(s))\n", r.Target, verdict, r.Blockers, r.Warnings)
	return o.err
}
