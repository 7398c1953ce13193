package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The variants, as -variants names them.
const (
	variantPoll   = "poll"   // ours, interval (10s by default)
	variantWatch  = "watch"  // ours, mode: watch
	variantOwners = "owners" // ours, mode: watch with extract: owners (see -pods)
	variantPeer   = "peer"   // contrib k8s_events v0.148.0
)

func variantNames() []string { return []string{variantPoll, variantWatch, variantOwners, variantPeer} }

// variantTitle is a variant's column heading.
func variantTitle(v string, s settings) string {
	switch v {
	case variantPoll:
		return "ours, poll (`interval: " + s.interval.String() + "`)"
	case variantWatch:
		return "ours, `mode: watch`"
	case variantOwners:
		return "ours, `mode: watch`, `extract: owners`"
	default:
		return "contrib `k8s_events` v0.148.0"
	}
}

func parseVariants(list string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for v := range strings.SplitSeq(list, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		known := false
		for _, n := range variantNames() {
			known = known || v == n
		}
		if !known {
			return nil, fmt.Errorf("unknown variant %q: use %s", v, strings.Join(variantNames(), ", "))
		}
		if seen[v] {
			return nil, fmt.Errorf("variant %q given twice", v)
		}
		seen[v] = true
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no variant: use some of %s", strings.Join(variantNames(), ", "))
	}
	return out, nil
}

// benchNamespace holds every Event of the benchmark; each collector reads
// only it.
const benchNamespace = "bench"

// exporterYAML is the exporter every variant uses: OTLP/HTTP without
// compression and without a sending queue, so that a record reaches the sink
// when the receiver hands it on, and no processor in between. The type is
// otlp_http in both core versions (v0.165.0 and v0.148.0).
func exporterYAML(endpoint string) string {
	return `exporters:
  otlp_http:
    endpoint: ` + endpoint + `
    compression: none
    sending_queue:
      enabled: false
`
}

// serviceYAML wires receiver to otlp_http, with the collector's own metrics
// off (no port to collide with) and info logs, which the bench reads.
func serviceYAML(receiver string, extensions ...string) string {
	return `service:
  extensions: [` + strings.Join(extensions, ", ") + `]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
  pipelines:
    logs:
      receivers: [` + receiver + `]
      exporters: [otlp_http]
`
}

// collectorConfig is the configuration of variant v. Ours keeps its resume
// point in file_storage under storageDir (so a restart resumes); the peer has
// no resume point to keep. Both read benchNamespace with the admin kubeconfig
// in $KUBECONFIG.
func collectorConfig(v string, s settings, endpoint, storageDir string) string {
	if v == variantPeer {
		// The peer lists once at start (for a resourceVersion) and then
		// watches; it emits only Events whose time is not before its start.
		return `receivers:
  k8s_events:
    auth_type: kubeConfig
    namespaces: [` + benchNamespace + `]
` + exporterYAML(endpoint) + serviceYAML("k8s_events")
	}
	mode := "    interval: " + s.interval.String() + "\n"
	switch v {
	case variantWatch:
		mode = "    mode: watch\n"
	case variantOwners:
		// The Events' Pods, their ReplicaSets and Deployments exist (-pods):
		// each Pod costs a GET, and its ReplicaSet one more.
		mode = "    mode: watch\n    extract:\n      owners: true\n"
	}
	return `extensions:
  file_storage:
    directory: ` + storageDir + `
receivers:
  k8sevents:
    auth_type: kubeConfig
    namespaces: [` + benchNamespace + `]
` + mode + `    storage: file_storage
` + exporterYAML(endpoint) + serviceYAML("k8sevents", "file_storage")
}

// writeConfig writes variant v's configuration into dir and returns its path.
func writeConfig(dir string, v string, s settings, endpoint string) (string, error) {
	storage := filepath.Join(dir, "storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "config.yaml")
	return path, os.WriteFile(path, []byte(collectorConfig(v, s, endpoint, storage)), 0o600)
}

func binaryOf(v string, s settings) string {
	if v == variantPeer {
		return s.peer
	}
	return s.collector
}

// validate runs `<binary> validate` on variant v's configuration.
func validate(ctx context.Context, work string, s settings, v string) error {
	dir := filepath.Join(work, "validate-"+v)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg, err := writeConfig(dir, v, s, "http://127.0.0.1:4318")
	if err != nil {
		return fmt.Errorf("variant %s: write config: %w", v, err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binaryOf(v, s), "validate", "--config", cfg).CombinedOutput()
	if err != nil {
		return fmt.Errorf("variant %s: %s refuses its configuration (%w):\n%s\nconfiguration:\n%s",
			v, filepath.Base(binaryOf(v, s)), err, strings.TrimSpace(string(out)), collectorConfig(v, s, "http://127.0.0.1:4318", filepath.Join(dir, "storage")))
	}
	return nil
}
