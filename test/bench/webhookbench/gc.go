package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshshift/meshshift/test/harness"
)

// shippedGC gives this process the garbage collector settings of the
// shipped manager (the GOGC and GOMEMLIMIT env of config/manager/manager.yaml),
// so that the webhook under test runs as it does in the cluster. A variable
// set in this process's own environment wins (the runtime applied it).
// Both variants (meshshift and no-op) run in this process alike.
func shippedGC() (string, error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return "", err
	}
	path := filepath.Join(root, "config", "manager", "manager.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read manager manifest: %w", err)
	}
	env := map[string]string{}
	for _, doc := range bytes.Split(raw, []byte("\n---")) {
		var d appsv1.Deployment
		if err := yaml.Unmarshal(doc, &d); err != nil || d.Kind != "Deployment" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "manager" {
				for _, e := range c.Env {
					env[e.Name] = e.Value
				}
			}
		}
	}
	var said []string
	if v, ok := env["GOGC"]; ok {
		if own, set := os.LookupEnv("GOGC"); set {
			said = append(said, "GOGC="+own+" (this process's environment)")
		} else {
			pct, err := strconv.Atoi(v)
			if err != nil {
				return "", fmt.Errorf("%s: env GOGC %q: want an integer: %w", path, v, err)
			}
			debug.SetGCPercent(pct)
			said = append(said, "GOGC="+v)
		}
	}
	if v, ok := env["GOMEMLIMIT"]; ok {
		if own, set := os.LookupEnv("GOMEMLIMIT"); set {
			said = append(said, "GOMEMLIMIT="+own+" (this process's environment)")
		} else {
			n, err := parseMemLimit(v)
			if err != nil {
				return "", fmt.Errorf("%s: env GOMEMLIMIT: %w", path, err)
			}
			debug.SetMemoryLimit(n)
			said = append(said, "GOMEMLIMIT="+v)
		}
	}
	if len(said) == 0 {
		return "Go's defaults (the manager manifest sets neither GOGC nor GOMEMLIMIT)", nil
	}
	return strings.Join(said, " ") + " as config/manager/manager.yaml", nil
}

// parseMemLimit reads a GOMEMLIMIT value: bytes, with an optional B, KiB,
// MiB, GiB or TiB suffix, as the Go runtime does.
func parseMemLimit(s string) (int64, error) {
	mult := int64(1)
	num := s
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want a number of bytes with an optional B, KiB, MiB, GiB or TiB suffix", s)
	}
	return n * mult, nil
}
