package admjson

import (
	"encoding/json"
	"testing"

	sigsjson "sigs.k8s.io/json"
)

// podOfReview is the object of the API server's review (apiServerReview).
func podOfReview(b *testing.B) []byte {
	var r struct {
		Request struct {
			Object json.RawMessage `json:"object"`
		} `json:"request"`
	}
	if err := json.Unmarshal(apiServerReview(b), &r); err != nil {
		b.Fatal(err)
	}
	return r.Request.Object
}

// BenchmarkDecodePod is DecodePod on the pod of the API server's review
// (3.2 KB with managedFields, defaults and the token volume).
func BenchmarkDecodePod(b *testing.B) {
	raw := podOfReview(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for i := 0; i < b.N; i++ {
		if _, err := DecodePod(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodePodFull is the full decode DecodePod replaces (its baseline).
func BenchmarkDecodePodFull(b *testing.B) {
	raw := podOfReview(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for i := 0; i < b.N; i++ {
		var p Pod
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeReview is DecodeReview on the API server's review.
func BenchmarkDecodeReview(b *testing.B) {
	body := apiServerReview(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		if _, err := DecodeReview(body); err != nil {
			b.Fatal(err)
		}
	}
}
