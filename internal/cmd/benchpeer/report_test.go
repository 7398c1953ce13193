package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
	assert.Equal(t, "198 ms", delay(198*time.Millisecond))
	assert.Equal(t, "24.10 s", delay(24100*time.Millisecond))
}

func TestParseVariants(t *testing.T) {
	got, err := parseVariants("poll, peer")
	assert.NoError(t, err)
	assert.Equal(t, []string{"poll", "peer"}, got)
	_, err = parseVariants("poll,informer")
	assert.ErrorContains(t, err, `unknown variant "informer"`)
	_, err = parseVariants("poll,poll")
	assert.ErrorContains(t, err, "given twice")
	_, err = parseVariants(" , ")
	assert.ErrorContains(t, err, "no variant")
}

func TestCollectorConfig(t *testing.T) {
	s := settings{interval: 10 * time.Second}
	poll := collectorConfig(variantPoll, s, "http://127.0.0.1:1", "/tmp/st")
	assert.Contains(t, poll, "    interval: 10s\n    storage: file_storage\n")
	assert.Contains(t, poll, "directory: /tmp/st")
	watch := collectorConfig(variantWatch, s, "http://127.0.0.1:1", "/tmp/st")
	assert.Contains(t, watch, "    mode: watch\n")
	assert.NotContains(t, watch, "interval:")
	peer := collectorConfig(variantPeer, s, "http://127.0.0.1:1", "/tmp/st")
	assert.Contains(t, peer, "k8s_events:")
	assert.NotContains(t, peer, "storage")
	for _, cfg := range []string{poll, watch, peer} {
		assert.Contains(t, cfg, "compression: none")
		assert.Contains(t, cfg, "sending_queue:\n      enabled: false")
		assert.Contains(t, cfg, "namespaces: [bench]")
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
	assert.Equal(t, map[string]int{"pods": 2000, "replicasets": 100}, parseGets(exposition, "pods", "replicasets"))
}
