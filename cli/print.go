package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

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
		_, err = fmt.Fprintf(w, "%s\n", b)
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
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tWORKLOAD\tKIND\tCURRENT\tDECIDED\tWAVE\tRULE\tREASON")
	for _, r := range p.Rows {
		wave := "-"
		if r.Wave > 0 {
			wave = fmt.Sprint(r.Wave)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Workload, r.Kind, r.CurrentMode, r.Mode, wave, r.Rule, r.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, b := range p.Blocked {
		fmt.Fprintf(w, "Blocked, left out of the waves: namespace %s\n", b.Namespace)
		for _, r := range b.Reasons {
			fmt.Fprintf(w, "  - %s\n", r)
		}
	}
	if len(p.Blocked) > 0 {
		fmt.Fprintln(w)
	}
	if len(p.Waves) == 0 {
		_, err := fmt.Fprintln(w, "No wave proposed: no workload changes mode.")
		return err
	}
	fmt.Fprintln(w, "Proposed waves (lowest risk, then most sidecar resources freed, first):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WAVE\tNAMESPACES\tWORKLOADS\tRISK\tCPU FREED\tMEMORY FREED")
	for _, wv := range p.Waves {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\n", wv.Index, strings.Join(wv.Namespaces, ","), wv.Workloads, wv.Risk,
			wv.FreedCPU.String(), wv.FreedMemory.String())
	}
	return tw.Flush()
}

// PrintExplanation writes one workload's decision path.
func PrintExplanation(w io.Writer, format string, e *Explanation) error {
	if format != FormatTable {
		return PrintData(w, format, e)
	}
	fmt.Fprintf(w, "%s %s/%s (%s)\n", e.Kind, e.Namespace, e.Workload, e.Source)
	fmt.Fprintf(w, "  decided: %s by %s\n  reason:  %s\n", e.Decision.Mode, e.Decision.Rule, e.Decision.Reason)
	fmt.Fprintln(w, "\nInputs:")
	in := &e.Inputs
	fmt.Fprintf(w, "  current mode:          %s\n", in.CurrentMode)
	fmt.Fprintf(w, "  pod labels:            %s\n", kv(in.PodLabels))
	fmt.Fprintf(w, "  pod annotations:       %s\n", kv(in.PodAnnotations))
	fmt.Fprintf(w, "  hostNetwork:           %t\n", in.HostNetwork)
	fmt.Fprintf(w, "  namespace labels:      %s\n", kv(in.NamespaceLabels))
	ann := kv(in.NamespaceAnnotations)
	if in.TargetSimulated {
		ann += " (mode annotation simulated by --target)"
	}
	fmt.Fprintf(w, "  namespace annotations: %s\n", ann)
	fmt.Fprintf(w, "  policy:                %s\n", in.Policy)
	fmt.Fprintf(w, "  capabilities:          %s\n", in.Capabilities)
	fmt.Fprintf(w, "  traffic:               %s\n", in.Traffic)
	if len(in.Features) == 0 {
		fmt.Fprintln(w, "  mesh features:         none")
	} else {
		fmt.Fprintln(w, "  mesh features:")
		for _, f := range in.Features {
			fmt.Fprintf(w, "    - %s: %s, needs %s\n", f.Object, f.Feature, f.Need)
		}
	}
	fmt.Fprintln(w, "\nDecision path (first match wins):")
	for _, s := range e.Steps {
		fmt.Fprintf(w, "  %d. %-22s %-12s %s\n", s.N, s.Name, s.Status, s.Detail)
	}
	d := &e.Decision
	fmt.Fprintln(w, "\nWrites on the pods:")
	fmt.Fprintf(w, "  labels:      %s\n", kv(d.Labels))
	if len(d.LabelsToRemove) > 0 {
		fmt.Fprintf(w, "  remove:      %s\n", strings.Join(d.LabelsToRemove, ", "))
	}
	fmt.Fprintf(w, "  annotations: %s\n", kv(d.Annotations))
	for _, warn := range d.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	return nil
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
	if len(r.Findings) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEVERITY\tCHECK\tWORKLOAD\tOBJECT\tMESSAGE")
		for _, f := range r.Findings {
			wl := "-"
			if f.Workload != "" {
				wl = f.Namespace + "/" + f.Workload
			}
			obj := f.Object
			if obj == "" {
				obj = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Severity, f.Check, wl, obj, f.Message)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	verdict := "ready"
	if r.Blockers > 0 {
		verdict = "blocked"
	}
	_, err := fmt.Fprintf(w, "precheck toward %s: %s (%d blocker(s), %d warning(s))\n", r.Target, verdict, r.Blockers, r.Warnings)
	return err
}
