package policies

import (
	_ "embed"
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

// DefaultPolicyYAML is the shipped default DataplanePolicy, documented rule by
// rule (default-policy.yaml).
//
//go:embed default-policy.yaml
var DefaultPolicyYAML []byte

// DefaultPolicy decodes DefaultPolicyYAML.
func DefaultPolicy() (*v1alpha1.DataplanePolicy, error) {
	return DecodePolicy(DefaultPolicyYAML)
}

// DecodePolicy reads one DataplanePolicy from YAML or JSON, rejecting unknown
// fields. It does not validate the spec (ValidateDataplanePolicy does).
func DecodePolicy(data []byte) (*v1alpha1.DataplanePolicy, error) {
	var dp v1alpha1.DataplanePolicy
	if err := yaml.UnmarshalStrict(data, &dp); err != nil {
		return nil, fmt.Errorf("decode DataplanePolicy: %w", err)
	}
	if dp.Kind != "DataplanePolicy" || dp.APIVersion != v1alpha1.GroupVersion.String() {
		return nil, fmt.Errorf("decode DataplanePolicy: got %s %s, want %s DataplanePolicy", dp.APIVersion, dp.Kind, v1alpha1.GroupVersion)
	}
	return &dp, nil
}
