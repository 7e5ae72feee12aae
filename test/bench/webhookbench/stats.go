package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// abba is the order of the variants: noop first, then alternating pairs, so
// that drift in a shared machine's load hits both alike.
func abba(rounds int) []bool {
	out := make([]bool, 0, 2*rounds)
	for i := 0; i < rounds; i++ {
		if i%2 == 0 {
			out = append(out, true, false)
		} else {
			out = append(out, false, true)
		}
	}
	return out
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func name(noop bool) string {
	if noop {
		return "noop     "
	}
	return "meshshift"
}
func fmtCPU(m map[string]float64) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s %.0fus ", n, m[n])
	}
	return strings.TrimSpace(b.String())
}

func fmtRatios(xs []float64) string {
	var b strings.Builder
	for i, x := range xs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.3f", x)
	}
	return b.String()
}

func ms(d time.Duration) float64 { return d.Seconds() * 1000 }

func pct(lat []time.Duration, p int) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := len(s) * p / 100
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}
