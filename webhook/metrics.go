package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Label values of meshshift_webhook_rejections_total's reason.
const (
	ReasonInvalidMeshMetadata   = "invalid-mesh-metadata"
	ReasonModeNotAllowed        = "mode-not-allowed"
	ReasonInvalidMode           = "invalid-mode"
	ReasonConflictingInjection  = "conflicting-injection-labels"
	ReasonOwnedByMigration      = "owned-by-migration"
	ReasonInvalidSpec           = "invalid-spec"
	ReasonNamespaceOwnedByOther = "namespace-owned-by-other-migration"
	ReasonUndecodable           = "undecodable"
)

var (
	decisionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshshift_webhook_decisions_total",
		Help: "Pods decided by the mutating webhook, by decided mode and the rule that chose it.",
	}, []string{"mode", "rule"})
	rejectionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshshift_webhook_rejections_total",
		Help: "Admission requests denied by a validating webhook, by object kind and reason.",
	}, []string{"kind", "reason"})
	decisionSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "meshshift_webhook_decision_duration_seconds",
		Help:    "Time the mutating webhook spends gathering inputs, deciding and building the patch of one pod.",
		Buckets: []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05},
	})
	rememberedAnswers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshshift_webhook_remembered_answers_total",
		Help: "Pods the mutating webhook answered with the remembered answer of an earlier pod of their workload (counted in meshshift_webhook_decisions_total too).",
	})
	missedDecisions = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "meshshift_webhook_missed_decisions",
		Help: "Pods in decided namespaces that carry no meshshift.io/decision (admitted while the webhook was down).",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(decisionsTotal, rejectionsTotal, decisionSeconds, rememberedAnswers, missedDecisions)
}
