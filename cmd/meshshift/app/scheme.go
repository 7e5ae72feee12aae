package app

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// newScheme holds every type the manager reads or writes.
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(meshv1alpha1.AddToScheme(s))
	utilruntime.Must(gatewayv1.Install(s))   // the migrator's waypoint Gateways
	utilruntime.Must(signals.AddToScheme(s)) // the mesh objects the webhook's index watches
	return s
}
