// Package admjson reads and writes the JSON of the pod admission path in one
// pass, without reflection: DecodeReview (an AdmissionReview's request, the
// object kept raw), DecodePod (a pod's metadata and spec.hostNetwork, its
// spec.nodeSelector and spec.affinity kept raw, the rest skipped) and PatchWriter (the JSON patch of label and annotation
// changes). Each is checked by a fuzz target against encoding/json on the
// same input.
//
// It is a package of its own, with no dependency beyond sigs.k8s.io/json, so
// that its fuzz targets run in a small binary: in the webhook package's test
// binary (controller-runtime, client-go, cel-go) the fuzzer's coverage
// bookkeeping alone holds it to a few thousand inputs a second.
package admjson
