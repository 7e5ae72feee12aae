package main

import (
	"math"
	"testing"
)

func TestHistogramQuantile(t *testing.T) {
	bounds := []float64{0.001, 0.005, 0.01, math.Inf(1)}
	before := histogram{bounds: bounds, counts: []float64{10, 10, 10, 10}, total: 10}
	after := histogram{bounds: bounds, counts: []float64{60, 108, 109, 110}, total: 110}
	d := after.minus(before)
	for _, tc := range []struct {
		q, want float64
	}{
		{0.5, 0.001},    // 50 of 100 in the first bucket: its upper bound
		{0.25, 0.0005},  // halfway through the first bucket
		{0.98, 0.005},   // the second bucket's bound
		{0.985, 0.0075}, // halfway through the third bucket (one sample)
		{0.99, 0.01},    // the third bucket's bound
		{1, 0.01},       // in the +Inf bucket: the last finite bound
	} {
		if got := d.quantile(tc.q); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := (histogram{}).quantile(0.99); !math.IsNaN(got) {
		t.Errorf("empty histogram: quantile = %v, want NaN", got)
	}
}
