package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

func TestReadRecord(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	attrs := map[string]any{attrEventName: "poll-run-7", attrEventUID: "u7", attrEventRV: "70", "k8s.object.resource_version": "42"}
	// A k8sobjects record: the watch notification, as the body's JSON.
	body := `{"type":"ADDED","object":{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"objects-run-7","namespace":"bench","uid":"u8","resourceVersion":"80"},"note":"n","reason":"BenchCreated"}}`
	tests := []struct {
		name   string
		how    reading
		record otlpsink.Record
		want   seen
		ok     bool
	}{
		{"ours", readAttributes, otlpsink.Record{Attrs: attrs, Received: at}, seen{"poll-run-7", "u7", "70", at}, true},
		{"k8s_events", readAttributesNoRV, otlpsink.Record{Attrs: attrs, Received: at}, seen{"poll-run-7", "u7", "", at}, true},
		{"k8sobjects", readBody, otlpsink.Record{Body: body, Attrs: map[string]any{"event.name": "objects-run-7"}, Received: at}, seen{"objects-run-7", "u8", "80", at}, true},
		{"k8sobjects, not JSON", readBody, otlpsink.Record{Body: "a message", Received: at}, seen{at: at}, false},
		{"no uid", readAttributes, otlpsink.Record{Attrs: map[string]any{attrEventName: "x"}, Received: at}, seen{name: "x", at: at}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := readRecord(tt.how, tt.record)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestArrivals(t *testing.T) {
	a := newArrivals(readAttributes)
	at := time.Now()
	assert.False(t, a.keep(otlpsink.Record{Attrs: map[string]any{attrEventName: "a-0", attrEventUID: "u0"}, Received: at}))
	assert.False(t, a.keep(otlpsink.Record{Body: "no event", Received: at}))
	assert.False(t, a.keep(otlpsink.Record{Attrs: map[string]any{attrEventName: "a-1", attrEventUID: "u1"}, Received: at}))
	assert.Equal(t, 2, a.count())
	assert.Equal(t, []seen{{name: "a-1", uid: "u1", at: at}}, a.since(1))
	assert.Empty(t, a.since(5))
	assert.Equal(t, 1, a.unreadable)
}
