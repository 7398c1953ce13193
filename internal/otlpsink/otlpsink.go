// Package otlpsink is an OTLP/HTTP logs endpoint for tests: the collector
// under test exports to it, and the test reads back what arrived.
package otlpsink

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

// Record is one received log record, flattened for assertions.
type Record struct {
	Body      string
	Severity  plog.SeverityNumber
	Timestamp time.Time
	// Received is when the sink accepted the record.
	Received time.Time
	// From is the address (host only) the export came from: which replica
	// sent the record, where several share a sink.
	From string
	// Attrs holds the record's attributes and, under the same keys, its
	// resource's attributes (record attributes win).
	Attrs map[string]any
}

// Str returns the attribute as a string ("" when missing).
func (r Record) Str(key string) string {
	v, _ := r.Attrs[key].(string)
	return v
}

// Int returns the attribute as an int64 (0 when missing).
func (r Record) Int(key string) int64 {
	v, _ := r.Attrs[key].(int64)
	return v
}

// Sink is a running OTLP/HTTP server that stores every log record it
// accepts. Its methods are safe for concurrent use.
type Sink struct {
	srv *httptest.Server

	mu      sync.Mutex
	records []Record
	keep    func(Record) bool
	refuse  bool
	refused int
	// delayNext exports are answered only after delay.
	delayNext int
	delay     time.Duration
	cond      chan struct{} // closed and replaced on every change
}

// Start starts a sink that keeps every record, closed in t.Cleanup.
func Start(t testing.TB) *Sink {
	return StartFiltered(t, func(Record) bool { return true })
}

// StartFiltered starts a sink that accepts every record but keeps only those
// for which keep holds, closed in t.Cleanup.
func StartFiltered(t testing.TB, keep func(Record) bool) *Sink {
	return StartOn(t, "127.0.0.1:0", keep)
}

// StartOn is StartFiltered listening on addr (host:port; port 0 picks a
// free one), for collectors that cannot reach 127.0.0.1, such as those in
// Pods.
func StartOn(t testing.TB, addr string, keep func(Record) bool) *Sink {
	t.Helper()
	s, err := listen(addr, keep)
	if err != nil {
		t.Fatalf("otlpsink: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a sink outside a test (a benchmark command, say) that accepts
// every record but keeps only those for which keep holds. Close stops it.
func New(keep func(Record) bool) *Sink {
	s := &Sink{cond: make(chan struct{}), keep: keep}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// listen starts a sink on addr.
func listen(addr string, keep func(Record) bool) (*Sink, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &Sink{cond: make(chan struct{}), keep: keep}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if err := s.srv.Listener.Close(); err != nil {
		return nil, errors.Join(fmt.Errorf("replace the test server's listener: %w", err), l.Close())
	}
	s.srv.Listener = l
	s.srv.Start()
	return s, nil
}

// Close stops the sink's server, waiting for the exports in flight.
func (s *Sink) Close() { s.srv.Close() }

// Endpoint is the base URL to give the otlp_http exporter as `endpoint`.
func (s *Sink) Endpoint() string { return s.srv.URL }

// Refuse makes the sink answer every export with 503 (a retryable error)
// while on is true.
func (s *Sink) Refuse(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = on
}

// DelayNext makes the sink hold each of the next n exports for d before it
// answers, as a slow backend does.
func (s *Sink) DelayNext(n int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delayNext, s.delay = n, d
}

// Refused is the number of exports answered with 503.
func (s *Sink) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Records returns a copy of what has been received.
func (s *Sink) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// Wait waits until cond holds for the records received so far, or fails t
// after timeout, printing what holds then with describe.
func (s *Sink) Wait(t testing.TB, timeout time.Duration, what string, cond func([]Record) bool) []Record {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		recs, changed := append([]Record(nil), s.records...), s.cond
		s.mu.Unlock()
		if cond(recs) {
			return recs
		}
		select {
		case <-changed:
		case <-time.After(200 * time.Millisecond): // cond may look at other sinks too
		case <-deadline:
			t.Fatalf("otlpsink: timed out after %v waiting for %s; %d records received:\n%s", timeout, what, len(recs), summary(recs, 30))
			return nil
		}
	}
}

// summary lists the last n records, one line each.
func summary(recs []Record, n int) string {
	var b strings.Builder
	for _, r := range recs[max(0, len(recs)-n):] {
		fmt.Fprintf(&b, "  %s %s %s/%s: %s\n", r.Str("k8s.event.type"), r.Str("k8s.event.reason"),
			r.Str("k8s.object.kind"), r.Str("k8s.object.name"), r.Body)
	}
	return b.String()
}

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/logs" {
		http.Error(w, "only POST /v1/logs", http.StatusNotFound)
		return
	}
	s.mu.Lock()
	var delay time.Duration
	if s.delayNext > 0 {
		s.delayNext--
		delay = s.delay
	}
	refuse := s.refuse
	if refuse {
		s.refused++
		s.notify()
	}
	s.mu.Unlock()
	time.Sleep(delay)
	if refuse {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "refusing on purpose", http.StatusServiceUnavailable)
		return
	}
	body := r.Body // the server closes r.Body; a gzip reader is closed here
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, "gzip: "+err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	if body != r.Body {
		err = errors.Join(err, body.Close())
	}
	if err != nil {
		http.Error(w, "read: "+err.Error(), http.StatusBadRequest)
		return
	}
	req := plogotlp.NewExportRequest()
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		err = req.UnmarshalJSON(raw)
	} else {
		err = req.UnmarshalProto(raw)
	}
	if err != nil {
		http.Error(w, "decode: "+err.Error(), http.StatusBadRequest)
		return
	}
	from, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		from = r.RemoteAddr
	}
	recs := flatten(req.Logs(), time.Now(), from)
	s.mu.Lock()
	for _, r := range recs {
		if s.keep(r) {
			s.records = append(s.records, r)
		}
	}
	s.notify()
	s.mu.Unlock()
	resp, err := plogotlp.NewExportResponse().MarshalProto()
	if err != nil {
		http.Error(w, fmt.Sprint("encode: ", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(resp)
}

// notify wakes Wait; s.mu must be held.
func (s *Sink) notify() {
	close(s.cond)
	s.cond = make(chan struct{})
}

func flatten(ld plog.Logs, received time.Time, from string) []Record {
	var out []Record
	for _, rl := range ld.ResourceLogs().All() {
		res := rl.Resource().Attributes().AsRaw()
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				attrs := make(map[string]any, len(res)+lr.Attributes().Len())
				for k, v := range res {
					attrs[k] = v
				}
				lr.Attributes().Range(func(k string, v pcommon.Value) bool {
					attrs[k] = v.AsRaw()
					return true
				})
				out = append(out, Record{
					Body:      lr.Body().AsString(),
					Severity:  lr.SeverityNumber(),
					Timestamp: lr.Timestamp().AsTime(),
					Received:  received,
					From:      from,
					Attrs:     attrs,
				})
			}
		}
	}
	return out
}
