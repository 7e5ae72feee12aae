package app

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/webhook"
)

// webhookFlags are the manager's admission webhook flags.
type webhookFlags struct {
	bindAddress      string
	namespace        string
	serviceName      string
	secretName       string
	mutatingName     string
	validatingName   string
	certMode         string
	certDir          string
	migratorUsername string
	capabilities     []string
	spireCA          bool
}

func (w *webhookFlags) bind(f *pflag.FlagSet) {
	f.StringVar(&w.bindAddress, "webhook-bind-address", ":"+strconv.Itoa(webhook.DefaultPort), "address the admission webhook server binds to; 0 disables the webhooks and the missed-decision detector")
	f.StringVar(&w.namespace, "namespace", "", "meshshift's own namespace (webhook Secret, never decided); empty means the service account's namespace, else "+webhook.DefaultNamespace)
	f.StringVar(&w.serviceName, "webhook-service-name", webhook.DefaultServiceName, "Service in front of the webhook server; the serving certificate names <service>.<namespace>.svc")
	f.StringVar(&w.secretName, "webhook-secret-name", webhook.DefaultSecretName, "Secret holding the webhook CA and serving certificate (cert mode self)")
	f.StringVar(&w.mutatingName, "mutating-webhook-configuration", webhook.DefaultMutatingConfigName, "MutatingWebhookConfiguration whose caBundle is kept (cert mode self); the shipped RBAC allows updating only the default name")
	f.StringVar(&w.validatingName, "validating-webhook-configuration", webhook.DefaultValidatingConfigName, "ValidatingWebhookConfiguration whose caBundle is kept (cert mode self); the shipped RBAC allows updating only the default name")
	f.StringVar(&w.certMode, "cert-mode", string(webhook.CertModeSelf), "where the serving certificate comes from: self (a CA and certificate kept in the Secret) or cert-manager (files in --cert-dir)")
	f.StringVar(&w.certDir, "cert-dir", "", "folder with tls.crt and tls.key, reloaded when they change (cert mode cert-manager)")
	f.StringVar(&w.migratorUsername, "migrator-username", "", "user allowed to change the mesh metadata of namespaces an active wave owns; empty means system:serviceaccount:<namespace>:meshshift-manager")
	f.StringSliceVar(&w.capabilities, "capabilities", nil, "override capability detection with a fixed list: ztunnel, cilium, spire-ca (comma-separated); empty means detect them from the cluster's DaemonSets and node labels")
	f.BoolVar(&w.spireCA, "spire-ca", false, "the mesh's CA is SPIRE (an ambient blocker that cannot be seen from workloads)")
}

const saNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// resolveNamespace is meshshift's own namespace: --namespace, else the
// service account's, else the default.
func (w *webhookFlags) resolveNamespace() string {
	if w.namespace != "" {
		return w.namespace
	}
	if b, err := os.ReadFile(saNamespaceFile); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b))
	}
	return webhook.DefaultNamespace
}

// parseCapabilities turns --capabilities (and --spire-ca) into fixed
// capabilities; ok is false when the list is empty (detect them instead).
func parseCapabilities(list []string, spireCA bool) (caps signals.Capabilities, ok bool, err error) {
	caps.SpireCA = spireCA
	for _, c := range list {
		switch c {
		case "ztunnel":
			caps.Ztunnel = true
		case "cilium":
			caps.Cilium = true
		case "spire-ca":
			caps.SpireCA = true
		default:
			return caps, false, fmt.Errorf("flag --capabilities: %q is not one of ztunnel, cilium, spire-ca", c)
		}
	}
	return caps, len(list) > 0, nil
}

// setup adds the webhooks to mgr unless they are disabled. ns is meshshift's
// own namespace (resolveNamespace); traffic feeds the rules (may be nil);
// features is the manager's one index of mesh objects.
func (w *webhookFlags) setup(mgr ctrl.Manager, ns string, traffic webhook.TrafficSource, features *signals.Index, drain *webhook.Drain) error {
	if w.bindAddress == "0" {
		return nil
	}
	host, portStr, err := net.SplitHostPort(w.bindAddress)
	if err != nil {
		return fmt.Errorf("flag --webhook-bind-address %q: want host:port or :port: %w", w.bindAddress, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("flag --webhook-bind-address %q: port must be 1-65535", w.bindAddress)
	}
	caps, fixed, err := parseCapabilities(w.capabilities, w.spireCA)
	if err != nil {
		return err
	}
	user := w.migratorUsername
	if user == "" {
		user = "system:serviceaccount:" + ns + ":meshshift-manager"
	}
	opts := webhook.Options{
		Host: host, Port: port, Namespace: ns, ServiceName: w.serviceName, SecretName: w.secretName,
		MutatingConfigName: w.mutatingName, ValidatingConfigName: w.validatingName,
		CertMode: webhook.CertMode(w.certMode), CertDir: w.certDir, MigratorUsername: user, SpireCA: w.spireCA,
		Traffic: traffic, Features: features, Drain: drain,
	}
	if fixed {
		opts.Capabilities = webhook.StaticCapabilities(caps)
	}
	return webhook.Setup(mgr, opts)
}
