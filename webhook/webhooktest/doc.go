// Package webhooktest runs meshshift's admission webhooks against a test
// control plane (test/harness): it installs the shipped configurations from
// config/webhook with their clientConfig pointed at 127.0.0.1, and runs
// webhook.Setup in a manager of its own. Other packages' integration and
// end-to-end tests (the migrator's) use it:
//
//	c := harness.Start(t, harness.Options{...})
//	wh := webhooktest.Start(t, c, webhooktest.Options{})
//	// pods created through c.Client now carry meshshift's decision
//	wh.Stop() // simulate an outage; Restart() brings it back
//
// It must only be imported by tests.
package webhooktest
