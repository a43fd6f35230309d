// Command monitoring-check decodes prometheus-operator objects into the upstream
// monitoring.coreos.com/v1 Go types with unknown fields rejected, so a misspelled or misplaced field in
// manifests/monitoring fails a test, and parses every PrometheusRule expression with Prometheus's own
// PromQL parser, so a rule Prometheus would refuse to load fails too (named by group and rule).
// Input: a JSON array of objects on stdin. Exit 1 on any problem.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
)

func decodeStrict(raw json.RawMessage, into any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

// checkRules parses each rule's expression; the error names the group and the alert or record.
// The parser's defaults are those of a stock Prometheus (no experimental functions or syntax).
func checkRules(rule *monitoringv1.PrometheusRule) error {
	promql := parser.NewParser(parser.Options{})
	var problems []string
	for _, group := range rule.Spec.Groups {
		for i, r := range group.Rules {
			name := r.Alert
			if name == "" {
				name = r.Record
			}
			if name == "" {
				name = fmt.Sprintf("rule %d", i)
			}
			if _, err := promql.ParseExpr(r.Expr.String()); err != nil {
				problems = append(problems, fmt.Sprintf("group %s, %s: expr: %v", group.Name, name, err))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
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
			rule := &monitoringv1.PrometheusRule{}
			if err = decodeStrict(raw, rule); err == nil {
				err = checkRules(rule)
			}
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
