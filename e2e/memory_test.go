package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// TestMemoryDoesNotGrowWithStoredEvents compares the collector's heap while
// it polls 2,000 stored Events with its heap while it polls 20,000: the
// receiver holds one page, not a copy of every Event, so ten times the
// Events must not make a heap anywhere near ten times larger. It also checks
// the self-telemetry the collector exposes.
func TestMemoryDoesNotGrowWithStoredEvents(t *testing.T) {
	t.Parallel()
	eachMode(t, testMemoryDoesNotGrowWithStoredEvents)
}

func testMemoryDoesNotGrowWithStoredEvents(t *testing.T, mode string) {
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "mem")
	sink := newSink(t)
	port := collectortest.FreePort(t)
	// Only the test's namespace: the control plane reports Events of its own
	// (a repaired ClusterIP in default, for one), which the accepted-records
	// metric below would count.
	cfg := withMetrics(pipeline{mode: mode, receiver: "interval: 1s\npage_size: 500\nstart_at: beginning\nnamespaces: [mem]"}.config(sink), port)
	col := collectortest.Start(t, cfg, "KUBECONFIG="+clusterReaderKubeconfig(t, cp, mode))
	col.WaitOutput("Everything is ready", time.Minute)
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)

	createEvents(t, c, "mem", "small", 2000)
	sink.Wait(t, waitLong, "2,000 records", func(r []otlpsink.Record) bool { return len(r) >= 2000 })
	small := peakHeap(t, metricsURL, 10*time.Second)

	createEvents(t, c, "mem", "large", 18000)
	sink.Wait(t, waitLong, "20,000 records", func(r []otlpsink.Record) bool { return len(r) >= 20000 })
	large := peakHeap(t, metricsURL, 10*time.Second)

	ratio := float64(large) / float64(small)
	t.Logf("%s: peak heap while reading: 2,000 stored Events %.1f MiB, 20,000 stored Events %.1f MiB, ratio %.2f",
		mode, float64(small)/(1<<20), float64(large)/(1<<20), ratio)
	// An informer cache would hold all 20,000 Events (about 1 KiB each in
	// memory): far more than the difference allowed here.
	if ratio > 2 {
		t.Errorf("heap grew %.2f times with 10 times the stored Events; want it bounded by a page", ratio)
	}
	if n := len(sink.Records()); n != 20000 {
		t.Errorf("%d records, want 20000", n)
	}

	m := scrape(t, metricsURL)
	defer func() {
		if t.Failed() {
			t.Logf("receiver series scraped: %v", receiverSeries(m))
		}
	}()
	if got := m[`otelcol_receiver_accepted_log_records{receiver="k8sevents",transport="http"}`]; got != 20000 {
		t.Errorf("otelcol_receiver_accepted_log_records = %v, want 20000", got)
	}
	if got := sumPrefix(m, `otelcol_receiver_k8sevents_delivery_delay_count{`); got != 20000 {
		t.Errorf("otelcol_receiver_k8sevents_delivery_delay_count = %v, want 20000 (one per Event)", got)
	}
	pages := sumPrefix(m, `otelcol_receiver_k8sevents_list_pages{`)
	if mode == modeWatch {
		// The Events were created after the start: the first list found an
		// empty namespace, and the watch brought the rest.
		if pages != 1 {
			t.Errorf("otelcol_receiver_k8sevents_list_pages = %v, want 1 (the first list; then only the watch)", pages)
		}
		if got := m[`otelcol_receiver_k8sevents_scope_state{receiver="k8sevents",state="streaming"}`]; got != 1 {
			t.Errorf("otelcol_receiver_k8sevents_scope_state{state=streaming} = %v, want 1", got)
		}
		return
	}
	// The records came in two waves, so at least two polls delivered them;
	// how many more ran depends on the machine's speed, not asserted here.
	polls := sumPrefix(m, `otelcol_receiver_k8sevents_polls{`)
	if polls < 2 {
		t.Errorf("otelcol_receiver_k8sevents_polls = %v, want at least 2", polls)
	}
	if got := sumPrefix(m, `otelcol_receiver_k8sevents_poll_duration_count{`); got < 2 {
		t.Errorf("otelcol_receiver_k8sevents_poll_duration_count = %v, want at least 2", got)
	}
	if pages < 40 {
		t.Errorf("otelcol_receiver_k8sevents_list_pages = %v, want at least 40 (20,000 Events in pages of 500)", pages)
	}
}

// withMetrics turns the collector's own metrics on, served for Prometheus
// on 127.0.0.1:port.
func withMetrics(cfg string, port int) string {
	return strings.Replace(cfg, "    metrics:\n      level: none\n", fmt.Sprintf(`    metrics:
      level: detailed
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
`, port), 1)
}

// peakHeap samples the collector's heap for d and returns the largest value.
func peakHeap(t *testing.T, url string, d time.Duration) float64 {
	t.Helper()
	var peak float64
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		peak = max(peak, sumPrefix(scrape(t, url), "otelcol_process_runtime_heap_alloc_bytes"))
	}
	if peak == 0 {
		t.Fatalf("no otelcol_process_runtime_heap_alloc_bytes at %s", url)
	}
	return peak
}

// scrape reads a Prometheus text exposition into series -> value, with the
// labels the collector adds to every series (service name, instance, ...)
// removed, so that tests can name series by the labels they care about.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err = errors.Join(err, resp.Body.Close()); err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[dropLabels(line[:i])] += v
	}
	return out
}

// dropLabels keeps only the labels named receiver, transport, outcome,
// kind, cause, state and resource, in their order.
func dropLabels(series string) string {
	name, labels, ok := strings.Cut(series, "{")
	if !ok {
		return series
	}
	var kept []string
	for l := range strings.SplitSeq(strings.TrimSuffix(labels, "}"), ",") {
		k, _, _ := strings.Cut(l, "=")
		switch k {
		case "receiver", "transport", "outcome", "kind", "cause", "state", "resource":
			kept = append(kept, l)
		}
	}
	if len(kept) == 0 {
		return name
	}
	return name + "{" + strings.Join(kept, ",") + "}"
}

func sumPrefix(m map[string]float64, prefix string) float64 {
	var sum float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			sum += v
		}
	}
	return sum
}

func receiverSeries(m map[string]float64) []string {
	var out []string
	for k, v := range m {
		if strings.HasPrefix(k, "otelcol_receiver") {
			out = append(out, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return out
}
