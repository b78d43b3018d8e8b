//go:build tools

// Package tools pins what generate.sh runs: KEDA's API package and the CRD generator KEDA's own build uses.
// Never built (the "tools" tag); go.mod and go.sum pin the versions.
package tools

import (
	_ "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
