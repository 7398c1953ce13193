package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// apiTraffic is what kube-apiserver served for Events (core/v1 and
// events.k8s.io/v1 alike), read from its /metrics: requests by verb (a watch
// counts when it ends), the bytes of its LIST responses as sent (gzip for
// those over 128 kB when the client accepts it, as client-go does), the
// notifications and bytes it sent on watches, and the watches open; and its
// GETs of Pods and ReplicaSets (the owners variant's lookups). The counters
// start at zero when kube-apiserver starts; compare two readings of one
// process.
type apiTraffic struct {
	requests    map[string]float64 // apiserver_request_total by verb
	gets        map[string]float64 // apiserver_request_total, verb GET, of pods and replicasets
	listBytes   float64            // apiserver_response_sizes_sum, verb LIST
	watchEvents float64            // apiserver_watch_events_total
	watchBytes  float64            // apiserver_watch_events_sizes_sum
	watchesOpen float64            // apiserver_longrunning_requests, verb WATCH (a gauge)
}

// readAPITraffic scrapes kube-apiserver's /metrics.
func readAPITraffic(ctx context.Context, c kubernetes.Interface) (apiTraffic, error) {
	raw, err := c.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return apiTraffic{}, fmt.Errorf("read kube-apiserver metrics: %w", err)
	}
	return parseAPITraffic(string(raw))
}

var metricLabel = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// parseAPITraffic reads the Event lines of a Prometheus text exposition.
func parseAPITraffic(text string) (apiTraffic, error) {
	t := apiTraffic{requests: map[string]float64{}, gets: map[string]float64{}}
	for line := range strings.SplitSeq(text, "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		switch name {
		case "apiserver_request_total", "apiserver_response_sizes_sum", "apiserver_longrunning_requests",
			"apiserver_watch_events_total", "apiserver_watch_events_sizes_sum":
		default:
			continue
		}
		end := strings.LastIndex(rest, "}")
		if end < 0 {
			return t, fmt.Errorf("parse kube-apiserver metrics: %q", line)
		}
		labels := map[string]string{}
		for _, m := range metricLabel.FindAllStringSubmatch(rest[:end], -1) {
			labels[m[1]] = m[2]
		}
		lookup := name == "apiserver_request_total" && labels["verb"] == "GET" && (labels["resource"] == "pods" || labels["resource"] == "replicasets")
		if (labels["resource"] != "events" && !lookup) || labels["subresource"] != "" {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest[end+1:]), 64)
		if err != nil {
			return t, fmt.Errorf("parse kube-apiserver metrics: %q: %w", line, err)
		}
		if lookup {
			t.gets[labels["resource"]] += v
			continue
		}
		switch name {
		case "apiserver_request_total":
			t.requests[labels["verb"]] += v
		case "apiserver_response_sizes_sum":
			if labels["verb"] == "LIST" {
				t.listBytes += v
			}
		case "apiserver_longrunning_requests":
			if labels["verb"] == "WATCH" {
				t.watchesOpen += v
			}
		case "apiserver_watch_events_total":
			t.watchEvents += v
		case "apiserver_watch_events_sizes_sum":
			t.watchBytes += v
		}
	}
	return t, nil
}

// sub is t minus an earlier reading o.
func (t apiTraffic) sub(o apiTraffic) apiTraffic {
	d := apiTraffic{
		requests:    map[string]float64{},
		gets:        map[string]float64{},
		listBytes:   t.listBytes - o.listBytes,
		watchEvents: t.watchEvents - o.watchEvents,
		watchBytes:  t.watchBytes - o.watchBytes,
		// A gauge: the later reading.
		watchesOpen: t.watchesOpen,
	}
	for verb, n := range t.requests {
		if n -= o.requests[verb]; n != 0 {
			d.requests[verb] = n
		}
	}
	for resource, n := range t.gets {
		if n -= o.gets[resource]; n != 0 {
			d.gets[resource] = n
		}
	}
	return d
}
