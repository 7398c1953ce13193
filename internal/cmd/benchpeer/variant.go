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

// variant is one collector configuration the bench measures. To add one,
// add an entry to variants: its name, its column heading, the binary, the
// receiver's YAML, and how its records name the Event they carry.
type variant struct {
	// name is the -variants name and the prefix of the Events created for
	// it: lower case letters, digits and '-'.
	name  string
	title string
	// peer runs contrib's collector (tools/peer, `make peer`), else ours.
	peer bool
	// receiver is the receiver's component ID in the pipeline.
	receiver string
	// receiverYAML is the receiver's configuration under `receivers:`,
	// without its `storage` key.
	receiverYAML func(s settings) string
	// storage adds a file_storage extension and names it in the receiver's
	// `storage` key.
	storage bool
	// read says where a record names its Event.
	read reading
}

// The contrib version every peer variant runs (tools/peer).
const peerVersion = "v0.152.0"

// helmEventsPreset is how the collector's Helm chart configures k8sobjects
// for Events (presets.kubernetesEvents), here limited to benchNamespace like
// every other variant.
const helmEventsPreset = `  k8sobjects:
    auth_type: kubeConfig
    objects:
      - name: events
        mode: watch
        group: events.k8s.io
        exclude_watch_type: [DELETED]
        namespaces: [` + benchNamespace + `]
`

// variants are every variant the bench knows, in the order of the default
// -variants.
var variants = []variant{
	{
		name: "poll", title: "ours, poll", receiver: "k8sevents", storage: true, read: readAttributes,
		receiverYAML: func(s settings) string { return oursYAML("    interval: " + s.interval.String() + "\n") },
	},
	{
		name: "watch", title: "ours, `mode: watch`", receiver: "k8sevents", storage: true, read: readAttributes,
		receiverYAML: func(settings) string { return oursYAML("    mode: watch\n") },
	},
	{
		// The Events' Pods, their ReplicaSets and Deployments exist (-pods):
		// each Pod costs a GET, and its ReplicaSet one more.
		name: "owners", title: "ours, `mode: watch`, `extract: owners`", receiver: "k8sevents", storage: true, read: readAttributes,
		receiverYAML: func(settings) string { return oursYAML("    mode: watch\n    extract:\n      owners: true\n") },
	},
	{
		name: "events", title: "contrib `k8s_events` " + peerVersion, peer: true, receiver: "k8s_events", read: readAttributesNoRV,
		receiverYAML: func(settings) string { return contribEventsYAML },
	},
	{
		name: "events-storage", title: "contrib `k8s_events` " + peerVersion + " + `storage`", peer: true, receiver: "k8s_events",
		storage: true, read: readAttributesNoRV,
		receiverYAML: func(settings) string { return contribEventsYAML },
	},
	{
		name: "objects", title: "contrib `k8sobjects` " + peerVersion + " (Helm preset)", peer: true, receiver: "k8sobjects", read: readBody,
		receiverYAML: func(settings) string { return helmEventsPreset },
	},
	{
		name: "objects-storage", title: "contrib `k8sobjects` " + peerVersion + " (Helm preset) + `storage`", peer: true, receiver: "k8sobjects",
		storage: true, read: readBody,
		receiverYAML: func(settings) string { return helmEventsPreset },
	},
}

func oursYAML(mode string) string {
	return `  k8sevents:
    auth_type: kubeConfig
    namespaces: [` + benchNamespace + `]
` + mode
}

const contribEventsYAML = `  k8s_events:
    auth_type: kubeConfig
    namespaces: [` + benchNamespace + `]
`

func variantNames() []string {
	var out []string
	for _, v := range variants {
		out = append(out, v.name)
	}
	return out
}

func variantNamed(name string) (variant, bool) {
	for _, v := range variants {
		if v.name == name {
			return v, true
		}
	}
	return variant{}, false
}

func parseVariants(list string) ([]variant, error) {
	var out []variant
	seen := map[string]bool{}
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		v, ok := variantNamed(name)
		if !ok {
			return nil, fmt.Errorf("unknown variant %q: use %s", name, strings.Join(variantNames(), ", "))
		}
		if seen[name] {
			return nil, fmt.Errorf("variant %q given twice", name)
		}
		seen[name] = true
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no variant: use some of %s", strings.Join(variantNames(), ", "))
	}
	return out, nil
}

// heading is a variant's column heading.
func (v variant) heading(s settings) string {
	if v.name == "poll" {
		return v.title + " (`interval: " + s.interval.String() + "`)"
	}
	return v.title
}

// benchNamespace holds every Event of the benchmark; each collector reads
// only it.
const benchNamespace = "bench"

// exporterYAML is the exporter every variant uses: OTLP/HTTP without
// compression and without a sending queue, so that a record reaches the sink
// when the receiver hands it on, and no processor in between. The type is
// otlp_http in both core versions (ours and the peer's).
func exporterYAML(endpoint string) string {
	return `exporters:
  otlp_http:
    endpoint: ` + endpoint + `
    compression: none
    sending_queue:
      enabled: false
`
}

// collectorConfig is the configuration of variant v: its receiver reads
// benchNamespace with the admin kubeconfig in $KUBECONFIG and exports to
// endpoint, with its collector's own metrics off (no port to collide with)
// and info logs, which the bench reads. A variant with storage keeps its
// resume point in a file_storage under storageDir.
func collectorConfig(v variant, s settings, endpoint, storageDir string) string {
	var b strings.Builder
	extensions := ""
	if v.storage {
		b.WriteString("extensions:\n  file_storage:\n    directory: " + storageDir + "\n")
		extensions = "file_storage"
	}
	b.WriteString("receivers:\n" + v.receiverYAML(s))
	if v.storage {
		b.WriteString("    storage: file_storage\n")
	}
	b.WriteString(exporterYAML(endpoint))
	b.WriteString(`service:
  extensions: [` + extensions + `]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
  pipelines:
    logs:
      receivers: [` + v.receiver + `]
      exporters: [otlp_http]
`)
	return b.String()
}

// writeConfig writes variant v's configuration into dir and returns its path.
func writeConfig(dir string, v variant, s settings, endpoint string) (string, error) {
	storage := filepath.Join(dir, "storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "config.yaml")
	return path, os.WriteFile(path, []byte(collectorConfig(v, s, endpoint, storage)), 0o600)
}

func (v variant) binary(s settings) string {
	if v.peer {
		return s.peer
	}
	return s.collector
}

// validate runs `<binary> validate` on variant v's configuration.
func validate(ctx context.Context, work string, s settings, v variant) error {
	dir := filepath.Join(work, "validate-"+v.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg, err := writeConfig(dir, v, s, "http://127.0.0.1:4318")
	if err != nil {
		return fmt.Errorf("variant %s: write config: %w", v.name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, v.binary(s), "validate", "--config", cfg).CombinedOutput()
	if err != nil {
		return fmt.Errorf("variant %s: %s refuses its configuration (%w):\n%s\nconfiguration:\n%s",
			v.name, filepath.Base(v.binary(s)), err, strings.TrimSpace(string(out)), collectorConfig(v, s, "http://127.0.0.1:4318", filepath.Join(dir, "storage")))
	}
	return nil
}
