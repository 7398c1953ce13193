package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Lines as kube-apiserver v1.37 writes them; only those about events count.
const metricsText = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="events",scope="namespace",subresource="",verb="LIST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="events.k8s.io",resource="events",scope="namespace",subresource="",verb="LIST",version="v1"} 1
apiserver_request_total{code="0",component="apiserver",dry_run="",group="",resource="events",scope="namespace",subresource="",verb="WATCH",version="v1"} 2
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="events",scope="namespace",subresource="",verb="POST",version="v1"} 100
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 9
apiserver_response_sizes_bucket{component="apiserver",group="",resource="events",scope="namespace",subresource="",verb="LIST",version="v1",le="1000"} 1
apiserver_response_sizes_sum{component="apiserver",group="",resource="events",scope="namespace",subresource="",verb="LIST",version="v1"} 9.2e+07
apiserver_response_sizes_sum{component="apiserver",group="events.k8s.io",resource="events",scope="namespace",subresource="",verb="LIST",version="v1"} 1000
apiserver_response_sizes_sum{component="apiserver",group="",resource="events",scope="namespace",subresource="",verb="POST",version="v1"} 55555
apiserver_watch_events_sizes_sum{group="",resource="events",version="v1"} 2048
apiserver_watch_events_total{group="",resource="events",version="v1"} 4
apiserver_watch_events_total{group="",resource="pods",version="v1"} 40
apiserver_longrunning_requests{component="apiserver",group="",resource="events",scope="namespace",subresource="",verb="WATCH",version="v1"} 1
apiserver_longrunning_requests{component="apiserver",group="events.k8s.io",resource="events",scope="cluster",subresource="",verb="WATCH",version="v1"} 1
apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 7
`

func TestParseAPITraffic(t *testing.T) {
	got, err := parseAPITraffic(metricsText)
	require.NoError(t, err)
	assert.Equal(t, apiTraffic{
		requests: map[string]float64{"LIST": 4, "WATCH": 2, "POST": 100}, gets: map[string]float64{},
		listBytes: 92_001_000, watchEvents: 4, watchBytes: 2048, watchesOpen: 2,
	}, got)

	later := got
	later.requests = map[string]float64{"LIST": 5, "WATCH": 2, "POST": 130}
	later.listBytes += 500
	later.watchesOpen = 1
	assert.Equal(t, apiTraffic{requests: map[string]float64{"LIST": 1, "POST": 30}, gets: map[string]float64{}, listBytes: 500, watchesOpen: 1}, later.sub(got))

	_, err = parseAPITraffic(`apiserver_request_total{resource="events",verb="LIST"} many`)
	assert.ErrorContains(t, err, "parse kube-apiserver metrics")
}
