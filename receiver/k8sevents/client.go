package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/receiver"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	k8smetadata "k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents/internal/metadata"
)

// userAgent identifies the receiver and its own version first, whatever
// distribution it is built into, then that distribution and the component ID:
// "k8seventsreceiver/0.1.0 otelcol-k8sevents/0.1.0 (k8sevents/prod)".
func userAgent(set receiver.Settings) string {
	ua := metadata.UserAgentProduct + "/" + metadata.Version
	if bi := set.BuildInfo; bi.Command != "" {
		ua += " " + bi.Command
		if bi.Version != "" {
			ua += "/" + bi.Version
		}
	}
	return ua + " (" + set.ID.String() + ")"
}

// restConfig builds the client configuration for the configured auth_type.
// Lists ask for protobuf, the API server's cheapest encoding.
func restConfig(cfg *Config, userAgent string) (*rest.Config, error) {
	var (
		rc  *rest.Config
		err error
	)
	switch cfg.AuthType {
	case AuthTypeKubeConfig:
		rules := clientcmd.NewDefaultClientConfigLoadingRules() // KUBECONFIG, then ~/.kube/config
		overrides := &clientcmd.ConfigOverrides{CurrentContext: cfg.Context}
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig: %w", err)
		}
	case AuthTypeNone:
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, fmt.Errorf("auth_type none: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
		}
		rc = &rest.Config{
			Host:            "https://" + net.JoinHostPort(host, port),
			TLSClientConfig: rest.TLSClientConfig{CAFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"},
		}
	default: // AuthTypeServiceAccount
		rc, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("load in-cluster config (auth_type %s): %w", AuthTypeServiceAccount, err)
		}
	}
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	rc.UserAgent = userAgent
	if cfg.Mode == ModeWatch {
		rc.QPS, rc.Burst = watchModeQPS, watchModeBurst
	}
	return rc, nil
}

// watchModeQPS and watchModeBurst are the client-side rate limit of the
// receiver's requests in watch mode (client-go's token bucket). A list is
// read one page after another, so the limit sets how fast a list of many
// Events goes: at client-go's default, 5 a second, a list of 100,000 Events
// (200 pages of 500) takes 40 s at the least, and a list must finish before
// etcd's compaction (5 minutes by default) expires its continue token, or it
// starts again. Watch mode lists once, at its first start and after a 410:
// at 50 a second that list takes 4 s of the limit, and the Events stored
// meanwhile wait that much less. Poll mode keeps client-go's default: its
// lists repeat every interval, and the limit paces them, so that a poll of a
// large cluster cannot take more of the API server than 5 pages a second.
// The lookups of extract have a limit of their own (lookupQPS).
const (
	watchModeQPS   = 50
	watchModeBurst = 100
)

// clients are two API clients on one pool of connections. requests bounds
// every request by request_timeout (http.Client.Timeout, which covers the
// answer's body too); watches has no deadline, since a watch's answer is a
// stream that lasts minutes, and serves the watch streams only. Any new
// call to the API (an owner lookup, for one) goes through requests and so
// gets the deadline without more code.
type clients struct {
	requests kubernetes.Interface
	watches  kubernetes.Interface
	// metadata makes the lookups of extract (the metadata API: only an
	// object's metadata, in protobuf), on the same pool and with the same
	// deadline as requests, and a client-side rate limit of its own.
	metadata k8smetadata.Interface
	// redial is called after a request got no answer: the next request
	// closes the pool's idle connections before it starts, so that it dials
	// a new one rather than wait on one as dead as the request's own.
	redial func()
}

func newClients(cfg *Config, userAgent string) (clients, error) {
	rc, err := restConfig(cfg, userAgent)
	if err != nil {
		return clients{}, err
	}
	return clientsFor(rc, cfg.RequestTimeout)
}

// clientsFor builds the clients of rc, with requestTimeout on requests.
func clientsFor(rc *rest.Config, requestTimeout time.Duration) (clients, error) {
	base, err := rest.TransportFor(rc)
	if err != nil {
		return clients{}, fmt.Errorf("create kubernetes client: %w", err)
	}
	rt := &redialer{rt: base}
	requests, err := kubernetes.NewForConfigAndClient(rc, &http.Client{Transport: rt, Timeout: requestTimeout})
	if err != nil {
		return clients{}, fmt.Errorf("create kubernetes client: %w", err)
	}
	watches, err := kubernetes.NewForConfigAndClient(rc, &http.Client{Transport: rt})
	if err != nil {
		return clients{}, fmt.Errorf("create kubernetes client: %w", err)
	}
	lookups := rest.CopyConfig(rc)
	lookups.QPS, lookups.Burst = lookupQPS, lookupBurst
	metadata, err := k8smetadata.NewForConfigAndClient(lookups, &http.Client{Transport: rt, Timeout: requestTimeout})
	if err != nil {
		return clients{}, fmt.Errorf("create kubernetes metadata client: %w", err)
	}
	return clients{requests: requests, watches: watches, metadata: metadata, redial: func() { rt.pending.Store(true) }}, nil
}

// redialer closes the idle connections of the pool before the next request
// once told to. A request that runs out of time closes its own HTTP/1.1
// connection, but the pool may hold idle ones that went silent with it. An
// HTTP/2 connection is shared: cutting a request resets its stream only,
// and the connection stays in use until client-go's health check (a ping
// after 30 s without a frame, given 15 s) closes it; once its streams are
// gone it is idle, and closing the idle connections closes it. That is not
// yet so when the request returns (the stream is forgotten just after), so
// the closing waits for the next request, which comes after a back-off.
type redialer struct {
	rt      http.RoundTripper
	pending atomic.Bool
}

func (r *redialer) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.pending.CompareAndSwap(true, false) {
		utilnet.CloseIdleConnectionsFor(r.rt)
	}
	return r.rt.RoundTrip(req)
}

// WrappedRoundTripper lets client-go's utilities see the transport.
func (r *redialer) WrappedRoundTripper() http.RoundTripper { return r.rt }
