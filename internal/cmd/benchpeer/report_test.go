package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestFormats(t *testing.T) {
	assert.Equal(t, "1,243", num(1243))
	assert.Equal(t, "100,000", num(100000))
	assert.Equal(t, "999", num(999))
	assert.Equal(t, "-1,000", num(-1000))
	assert.Equal(t, "57 MiB", mib(57<<20))
	assert.Equal(t, "0.046", ratio(57, 1243))
	assert.Equal(t, "1.20", ratio(15, 12.5))
	assert.Equal(t, "24.1", ratio(24.1, 1))
	assert.Equal(t, "154", ratio(30.8, 0.2))
	assert.Equal(t, "12,342", ratio(35, 35.0/12342))
	assert.Equal(t, "n/a", ratio(1, 0))
	assert.Equal(t, "1/140,000", ratio(644, 644*140000))
	assert.Equal(t, "0.010", ratio(1, 100))
	assert.Equal(t, "0.000", ratio(0, 5))
	assert.Equal(t, "198 ms", delay(198*time.Millisecond))
	assert.Equal(t, "24.10 s", delay(24100*time.Millisecond))
	assert.Equal(t, "92.3 MB", bytesText(92_300_000))
	assert.Equal(t, "1.21 GB", bytesText(1_210_000_000))
	assert.Equal(t, "12 kB", bytesText(12_345))
	assert.Equal(t, "800 B", bytesText(800))
}

func TestParseVariants(t *testing.T) {
	got, err := parseVariants("poll, objects-storage")
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "poll", got[0].name)
	assert.Equal(t, "objects-storage", got[1].name)
	assert.True(t, got[1].peer)
	assert.True(t, got[1].storage)
	_, err = parseVariants("poll,informer")
	assert.ErrorContains(t, err, `unknown variant "informer": use poll, watch, owners, events, events-storage, objects, objects-storage`)
	_, err = parseVariants("poll,poll")
	assert.ErrorContains(t, err, "given twice")
	_, err = parseVariants(" , ")
	assert.ErrorContains(t, err, "no variant")
}

// Each variant's configuration is YAML with its receiver, the storage it
// names, and the same exporter; the k8sobjects ones are the Helm chart's
// kubernetesEvents preset.
func TestCollectorConfig(t *testing.T) {
	s := settings{interval: 10 * time.Second}
	type config struct {
		Extensions map[string]map[string]any `yaml:"extensions"`
		Receivers  map[string]map[string]any `yaml:"receivers"`
		Exporters  map[string]struct {
			Compression  string         `yaml:"compression"`
			SendingQueue map[string]any `yaml:"sending_queue"`
		} `yaml:"exporters"`
		Service struct {
			Extensions []string `yaml:"extensions"`
			Pipelines  map[string]struct {
				Receivers []string `yaml:"receivers"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			var c config
			require.NoError(t, yaml.Unmarshal([]byte(collectorConfig(v, s, "http://127.0.0.1:1", "/tmp/st")), &c))
			require.Contains(t, c.Receivers, v.receiver)
			rcv := c.Receivers[v.receiver]
			assert.Equal(t, "kubeConfig", rcv["auth_type"])
			assert.Equal(t, []string{v.receiver}, c.Service.Pipelines["logs"].Receivers)
			assert.Equal(t, "none", c.Exporters["otlp_http"].Compression)
			assert.Equal(t, false, c.Exporters["otlp_http"].SendingQueue["enabled"])
			if v.storage {
				assert.Equal(t, "file_storage", rcv["storage"])
				assert.Equal(t, "/tmp/st", c.Extensions["file_storage"]["directory"])
				assert.Equal(t, []string{"file_storage"}, c.Service.Extensions)
			} else {
				assert.NotContains(t, rcv, "storage")
				assert.Empty(t, c.Service.Extensions)
			}
			switch v.receiver {
			case "k8sobjects":
				assert.Equal(t, []any{map[string]any{
					"name": "events", "mode": "watch", "group": "events.k8s.io",
					"exclude_watch_type": []any{"DELETED"}, "namespaces": []any{"bench"},
				}}, rcv["objects"])
			default:
				assert.Equal(t, []any{"bench"}, rcv["namespaces"])
			}
			switch v.name {
			case "poll":
				assert.Equal(t, "10s", rcv["interval"])
			case "watch":
				assert.Equal(t, "watch", rcv["mode"])
			}
		})
	}
}

func TestParseGets(t *testing.T) {
	exposition := `# HELP apiserver_request_total [STABLE] Counter of apiserver requests
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 1990
apiserver_request_total{code="404",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 10
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="GET",version="v1"} 7
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 2000
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",resource="replicasets",scope="resource",subresource="",verb="GET",version="v1"} 100
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="events",scope="namespace",subresource="",verb="LIST",version="v1"} 3
`
	got, err := parseAPITraffic(exposition)
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"pods": 2000, "replicasets": 100}, got.gets)
	assert.Equal(t, map[string]float64{"LIST": 3}, got.requests, "the GETs of pods and replicasets are not requests for Events")
}
