// Package webhook is meshshift's admission side: the mutating Pod webhook that
// writes each new pod's dataplane decision as the labels the installed mesh
// understands, the validating webhooks for Pods, Namespaces, DataplanePolicies
// and MeshMigrations, the self-managed serving certificates, the
// missed-decision detector that reports pods admitted while the webhook was down,
// and the DataplanePolicy status reconciler (PolicyStatusReconciler: Ready and
// observedGeneration, so a policy stored while the webhook was down and left
// out of decisions because it does not compile shows up as Ready=False).
//
// Setup wires all of it into a controller-runtime manager:
//
//	err := webhook.Setup(mgr, webhook.Options{
//		Namespace:        "meshshift-system",
//		Port:             9443,
//		MigratorUsername: "system:serviceaccount:meshshift-system:meshshift-manager",
//	})
//
// Setup must be called before mgr.Start. With Options.CertMode CertModeSelf (the
// default) it creates or renews the CA and serving certificate in the Secret
// Options.SecretName before it returns, so the server has a certificate as soon
// as it listens; the caBundle of both webhook configurations
// (Options.MutatingConfigName, Options.ValidatingConfigName) is patched then and
// on every check. Tests that run the webhook against a real API server use
// package webhooktest: it installs the shipped configurations from
// config/webhook with their clientConfig turned into a URL on 127.0.0.1 and
// runs Setup in a manager of its own (Start, Stop, Restart).
//
// The admission path does no network call: namespaces and DataplanePolicies come
// from the manager's informers (NamespaceStore, PolicyStore: policies are
// compiled once per generation), MeshMigrations from its cache,
// mesh features from a FeatureSource (signals.Index), traffic from the latest
// signals.TrafficSnapshot, capabilities from Options.Capabilities. Missing or
// stale data is passed to policies.Decide as such.
//
// The pod mutator and the pod validator, which the API server waits on for
// every pod, are served by ReviewHandler: one pass over the AdmissionReview
// that keeps the request fields they read, reads the pod's metadata and
// spec.hostNetwork in the same pass (admjson.DecodePodReview), and writes
// the answer without reflection, on long-lived goroutines whose stacks have
// grown already. It gives the answers of controller-runtime's
// admission.Webhook (TestReviewHandlerAgreesWithWebhook) at a sixth of its
// cost. The Namespace, DataplanePolicy and MeshMigration validators, called
// rarely, use admission.Webhook.
//
// Every pod of one workload gets the same answer while its inputs other than
// traffic are unchanged (policies.Stabilizer; DESIGN.md, "Stability"). A
// workload is the pod's controller, except that the pods of every run (Job)
// of a CronJob are keyed on the CronJob and decided without the Job
// controller's per-run labels; the Job's owner is read from a metadata-only
// Job informer, and a Job it does not hold yet keys on itself. The
// mutator also remembers the answer itself per workload: the next pod of a
// ReplicaSet, whose labels and annotations are the same bytes, is answered
// with the same patch without decoding them or deciding again, until a
// namespace, policy, mesh object or capability changes (answerMemo;
// TestPodMutatorRemembersAnswers shows it always agrees with deciding
// afresh).
//
// Metrics (registered in controller-runtime's metrics registry):
//
//	meshshift_webhook_decisions_total{mode,rule}         counter: pods decided by the mutating webhook
//	meshshift_webhook_rejections_total{kind,reason}      counter: requests denied by a validating webhook
//	meshshift_webhook_decision_duration_seconds          histogram: time to gather inputs, decide and build the patch
//	meshshift_webhook_remembered_answers_total           counter: pods answered with their workload's remembered answer
//	meshshift_webhook_missed_decisions                   gauge: pods in decided namespaces without meshshift.io/decision
//
// Imports: api/v1alpha1, policies, signals, controller-runtime and client-go. It
// must not import migrator, bpf or cmd; the migrator reads what this package
// writes (labels, annotations, MeshMigration status) through the API.
package webhook
