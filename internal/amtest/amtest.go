// Package amtest runs a Prometheus Alertmanager, built by `make alertmanager`,
// as a child process of a test, lists the alerts it holds (API v2), and
// receives its notifications on a webhook, as a pager or chat integration
// would.
package amtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// EnvBinary names the environment variable that points at the Alertmanager
// binary. `make test` sets it to .bin/alertmanager.
const EnvBinary = "K8SEVENTS_ALERTMANAGER"

// DefaultConfig sends every alert to the receiver "default", which notifies
// no one: the alerts are only listed.
const DefaultConfig = `route:
  receiver: default
receivers:
  - name: default
`

// Options say how Alertmanager is configured.
type Options struct {
	// Config is the content of alertmanager.yml. Default: DefaultConfig.
	Config string
}

// Alertmanager is one running Alertmanager.
type Alertmanager struct {
	srv *testbin.Running
}

// Binary returns the Alertmanager binary to run: $K8SEVENTS_ALERTMANAGER,
// else .bin/alertmanager at the module root (see testbin.Find).
func Binary(t testing.TB) string {
	t.Helper()
	return testbin.Find(t, EnvBinary, ".bin/alertmanager", "run `make test`, which builds it with `make alertmanager`")
}

// Start starts Alertmanager with its data in a temporary directory, without
// clustering, and waits until it is ready. It is killed in t.Cleanup; when
// the test failed, the end of its log is logged.
func Start(t testing.TB, opts Options) *Alertmanager {
	t.Helper()
	bin := Binary(t)
	if opts.Config == "" {
		opts.Config = DefaultConfig
	}
	began := time.Now()
	r := testbin.StartServer(t, testbin.Server{
		Name:      "alertmanager",
		Binary:    bin,
		ReadyPath: "/-/ready",
		Args: func(dir string, ports []int) ([]string, error) {
			path := filepath.Join(dir, "alertmanager.yml")
			if err := os.WriteFile(path, []byte(opts.Config), 0o600); err != nil {
				return nil, fmt.Errorf("write config: %w", err)
			}
			return []string{
				"--config.file=" + path,
				"--storage.path=" + filepath.Join(dir, "data"),
				fmt.Sprintf("--web.listen-address=127.0.0.1:%d", ports[0]),
				"--cluster.listen-address=", // one instance: no gossip
			}, nil
		},
	})
	t.Logf("amtest: Alertmanager at %s ready after %v", r.URL, time.Since(began).Round(time.Millisecond))
	return &Alertmanager{srv: r}
}

// Alert is an alert as Alertmanager's API v2 lists it.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	UpdatedAt   time.Time         `json:"updatedAt"`
	// GeneratorURL links to the rule that sent the alert.
	GeneratorURL string `json:"generatorURL"`
	Fingerprint  string `json:"fingerprint"`
	// Receivers are the receivers the routing tree chose for the alert.
	Receivers []struct {
		Name string `json:"name"`
	} `json:"receivers"`
	Status struct {
		// State is "active", "suppressed" or "unprocessed".
		State string `json:"state"`
	} `json:"status"`
}

// ReceiverNames are the names of the alert's receivers.
func (a Alert) ReceiverNames() []string {
	names := make([]string, 0, len(a.Receivers))
	for _, r := range a.Receivers {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	return names
}

// Alerts returns the alerts Alertmanager holds that have not resolved,
// those that match every matcher given (label="value", label=~"regexp",
// as amtool takes them) when there are any.
func (am *Alertmanager) Alerts(ctx context.Context, matchers ...string) ([]Alert, error) {
	u := am.srv.URL + "/api/v2/alerts"
	if len(matchers) > 0 {
		u += "?" + url.Values{"filter": matchers}.Encode()
	}
	var alerts []Alert
	if err := testbin.GetJSON(ctx, u, &alerts); err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return alerts, nil
}

// Notification is what Alertmanager POSTs to a webhook receiver (its
// payload version 4): the alerts of one group, routed to one receiver.
type Notification struct {
	Receiver string `json:"receiver"`
	// Status is "firing" when one of the alerts fires, else "resolved".
	Status            string              `json:"status"`
	Alerts            []NotificationAlert `json:"alerts"`
	GroupLabels       map[string]string   `json:"groupLabels"`
	CommonLabels      map[string]string   `json:"commonLabels"`
	CommonAnnotations map[string]string   `json:"commonAnnotations"`
	// Received is when the webhook received it (not part of the payload).
	Received time.Time `json:"-"`
}

// NotificationAlert is one alert of a Notification.
type NotificationAlert struct {
	// Status is "firing" or "resolved".
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Fingerprint string            `json:"fingerprint"`
}

// Webhook is an HTTP endpoint for Alertmanager's webhook_configs that keeps
// every notification it receives, in the order received.
type Webhook struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []Notification
	bad []error
}

// NewWebhook starts a webhook endpoint for t, closed in t.Cleanup. A body
// that is not a notification fails t at cleanup.
func NewWebhook(t testing.TB) *Webhook {
	t.Helper()
	w := &Webhook{}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(func() {
		w.srv.Close()
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, err := range w.bad {
			t.Errorf("amtest: webhook: %v", err)
		}
	})
	return w
}

func (w *Webhook) serve(rw http.ResponseWriter, r *http.Request) {
	var n Notification
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(body, &n)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.bad = append(w.bad, fmt.Errorf("%s %s: %w: %s", r.Method, r.URL.Path, err, body))
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	n.Received = time.Now()
	w.got = append(w.got, n)
}

// URL is the address to put into a webhook_config.
func (w *Webhook) URL() string { return w.srv.URL }

// Notifications returns the notifications received so far.
func (w *Webhook) Notifications() []Notification {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.got)
}

// URL is Alertmanager's HTTP address, such as http://127.0.0.1:41234: what
// Prometheus' alerting config and Loki's ruler.alertmanager_url take.
func (am *Alertmanager) URL() string { return am.srv.URL }

// LogPath is the file Alertmanager's output goes to.
func (am *Alertmanager) LogPath() string { return am.srv.LogPath() }
