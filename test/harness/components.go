package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func (c *Cluster) startControllerManager(ctx context.Context) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	flags := map[string]string{
		"kubeconfig":                       c.Kubeconfig,
		"leader-elect":                     "false",
		"bind-address":                     "127.0.0.1",
		"secure-port":                      strconv.Itoa(port),
		"authorization-always-allow-paths": "/healthz",
		"flex-volume-plugin-dir":           filepath.Join(c.Dir, "flexvolume"),
		"kube-api-qps":                     "500",
		"kube-api-burst":                   "1000",
		"concurrent-deployment-syncs":      "10",
		"concurrent-replicaset-syncs":      "10",
		"node-monitor-period":              "1s",
		"controllers":                      "*,-serviceaccount-token-controller",
		"use-service-account-credentials":  "false",
		"cert-dir":                         filepath.Join(c.Dir, "kcm-certs"),
	}
	for k, v := range c.kcmNodeFlags() {
		flags[k] = v
	}
	p, err := c.run("kube-controller-manager", filepath.Join(c.Env.BinaryAssetsDirectory, "kube-controller-manager"), joinFlags(flags)...)
	if err != nil {
		return err
	}
	return waitHealthy(ctx, p, port)
}

func (c *Cluster) startScheduler(ctx context.Context) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	p, err := c.run("kube-scheduler", filepath.Join(c.Env.BinaryAssetsDirectory, "kube-scheduler"), joinFlags(map[string]string{
		"kubeconfig":                       c.Kubeconfig,
		"leader-elect":                     "false",
		"bind-address":                     "127.0.0.1",
		"secure-port":                      strconv.Itoa(port),
		"authorization-always-allow-paths": "/healthz",
		"kube-api-qps":                     "500",
		"kube-api-burst":                   "1000",
		"cert-dir":                         filepath.Join(c.Dir, "scheduler-certs"),
	})...)
	if err != nil {
		return err
	}
	return waitHealthy(ctx, p, port)
}

// kwokConfig raises kwok's pod stage workers from 4 to 32 and its node
// stage workers to 8; a configuration file sets every option (none left 0).
const kwokConfig = `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  podPlayStageParallelism: 32
  nodePlayStageParallelism: 8
  nodeLeaseParallelism: 4
  podsOnNodeSyncParallelism: 4
`

// kwokNodeAnnotation marks the nodes kwok manages.
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

func (c *Cluster) startKwok(ctx context.Context, nodes int) error {
	dir, err := AssetDir("kwok", "kwok", "stages.yaml")
	if err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	// kwok plays the pod stages of every node with 4 workers by default, so
	// a wave of hundreds of pods queued behind one another where real
	// kubelets, one per node, would start them side by side.
	cfg := filepath.Join(c.Dir, "kwok-config.yaml")
	if err := os.WriteFile(cfg, []byte(kwokConfig), 0o600); err != nil {
		return fmt.Errorf("write kwok configuration: %w", err)
	}
	p, err := c.run("kwok", filepath.Join(dir, "kwok"), joinFlags(map[string]string{
		"kubeconfig":                            c.Kubeconfig,
		"config":                                filepath.Join(dir, "stages.yaml") + "," + cfg,
		"manage-nodes-with-annotation-selector": kwokNodeAnnotation + "=fake",
		"node-lease-duration-seconds":           "40",
		"cidr":                                  "10.244.0.0/16",
		"server-address":                        "127.0.0.1:" + strconv.Itoa(port),
	})...)
	if err != nil {
		return err
	}
	for i := range nodes {
		if err := c.Client.Create(ctx, kwokNode(fmt.Sprintf("kwok-node-%d", i))); err != nil {
			return fmt.Errorf("create kwok node %d: %w", i, err)
		}
	}
	return c.waitNodesReady(ctx, p, nodes)
}

func kwokNode(name string) *corev1.Node {
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{kwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"type":                   "kwok",
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
			},
		},
		Status: corev1.NodeStatus{Capacity: res, Allocatable: res},
	}
}

func (c *Cluster) waitNodesReady(ctx context.Context, p *process, want int) error {
	for {
		if p.exited() {
			return fmt.Errorf("kwok exited:\n%s", p.tail(20))
		}
		var nodes corev1.NodeList
		if err := c.Client.List(ctx, &nodes); err == nil {
			ready := 0
			for _, n := range nodes.Items {
				for _, cond := range n.Status.Conditions {
					if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
			if ready >= want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d kwok nodes to be ready: %w\n%s", want, ctx.Err(), p.tail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
