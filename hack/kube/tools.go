//go:build tools

// Package tools pins the control-plane binaries the test suite runs: a real
// kube-apiserver and the etcd it stores into (and kubectl, for machines without
// one), built from the same module
// graph Kubernetes v1.36.3 itself is released with.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
