// Command monitoring-check decodes prometheus-operator objects into the upstream
// monitoring.coreos.com/v1 Go types with unknown fields rejected, so a misspelled or misplaced field in
// manifests/monitoring fails a test. Input: a JSON array of objects on stdin. Exit 1 on any problem.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

func decodeStrict(raw json.RawMessage, into any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

func main() {
	var docs []json.RawMessage
	if err := json.NewDecoder(os.Stdin).Decode(&docs); err != nil {
		fmt.Fprintln(os.Stderr, "input:", err)
		os.Exit(2)
	}
	failed := false
	for i, raw := range docs {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			fmt.Printf("doc %d: %v\n", i, err)
			failed = true
			continue
		}
		var err error
		switch head.Kind {
		case "ServiceMonitor":
			err = decodeStrict(raw, &monitoringv1.ServiceMonitor{})
		case "PodMonitor":
			err = decodeStrict(raw, &monitoringv1.PodMonitor{})
		case "PrometheusRule":
			err = decodeStrict(raw, &monitoringv1.PrometheusRule{})
		default:
			err = fmt.Errorf("not a monitoring.coreos.com/v1 kind this check knows")
		}
		if head.APIVersion != "monitoring.coreos.com/v1" {
			err = fmt.Errorf("apiVersion %q", head.APIVersion)
		}
		if err != nil {
			fmt.Printf("doc %d (%s): %v\n", i, head.Kind, err)
			failed = true
		} else {
			fmt.Printf("doc %d (%s): ok\n", i, head.Kind)
		}
	}
	if failed {
		os.Exit(1)
	}
}
