// Package kubetest starts a real, local Kubernetes control plane (etcd,
// kube-apiserver and optionally kube-controller-manager and kube-scheduler)
// from the binaries that `make kube` builds into the repository's .bin, and
// optionally a real node: containerd and a kubelet that run Pods (see Node;
// it needs root and what `make node` installs and builds).
//
// The core API (Start, ControlPlane) does not depend on package testing, so
// commands such as internal/cmd/devcluster use it too; StartForTest wraps it
// for tests.
//
// Every process is started in its own process group with Pdeathsig set to
// SIGKILL, so none outlives the program that started it, and Stop ends each
// group: SIGTERM, then SIGKILL after a grace period.
package kubetest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/k8sevents/otelcol-k8sevents/internal/freeport"
)

// Options says how to start a control plane. The zero value is usable: it
// starts etcd and kube-apiserver only, in a temporary directory.
type Options struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager and
	// kube-scheduler. Default: FindBinDir ($K8SEVENTS_KUBE_BIN, else the
	// module's .bin).
	BinDir string

	// Dir is the working directory for certificates, etcd data, logs and
	// kubeconfig files. Default: a new temporary directory, removed by Stop.
	// A Dir given here is kept by Stop (so its logs can be read), but its
	// etcd data is cleared by Start: every control plane starts empty.
	Dir string

	// Controllers also starts kube-controller-manager and kube-scheduler,
	// and Start waits until they serve /healthz and the "default"
	// ServiceAccount exists (so Pods can be created).
	Controllers bool

	// NodeMonitorGracePeriod, when set, is kube-controller-manager's
	// --node-monitor-grace-period: how long a Node may go without a
	// heartbeat before it is marked NotReady.
	NodeMonitorGracePeriod time.Duration

	// EtcdCompactionInterval, when set, is kube-apiserver's
	// --etcd-compaction-interval.
	EtcdCompactionInterval time.Duration

	// Node also starts a node: containerd and a kubelet, registered as
	// NodeName, that run Pods for real (see Node). It implies Controllers.
	// It needs root, the Debian packages in NodePackages and the kubelet in
	// BinDir (`make node` provides them); CheckNode says what is missing.
	// Stop removes every container, mount, cgroup and the bridge.
	Node bool

	// Logs, when not nil, receives a copy of every process's output, each
	// line prefixed with the process name. The output always goes to
	// <Dir>/<binary>.log as well.
	Logs io.Writer

	// ExtraAPIServerArgs are appended to kube-apiserver's flags (a later
	// flag overrides an earlier one).
	ExtraAPIServerArgs []string

	// StartTimeout bounds each wait while starting (etcd health, /readyz,
	// controllers' /healthz). Default 2 minutes. The context given to Start
	// can end the start earlier.
	StartTimeout time.Duration

	// StopGracePeriod is how long Stop waits after SIGTERM before SIGKILL.
	// Default 15 seconds.
	StopGracePeriod time.Duration
}

// Component names, also the base names of the log files in Dir.
const (
	Etcd                  = "etcd"
	KubeAPIServer         = "kube-apiserver"
	KubeControllerManager = "kube-controller-manager"
	KubeScheduler         = "kube-scheduler"
)

// ControlPlane is a running control plane. Its methods are safe for
// concurrent use.
type ControlPlane struct {
	opts      Options
	dir       string
	removeDir bool
	pki       *pki
	sp        *spawner

	etcdURL    string
	apiPort    int
	kubeconfig string
	restConfig *rest.Config
	client     kubernetes.Interface

	node *Node

	mu        sync.Mutex
	procs     map[string]*process
	apiArgs   []string
	stopped   bool
	stopError error
}

// Start starts a control plane and waits until it is ready to use. ctx bounds
// the start only; the processes run until Stop. On error, everything already
// started is stopped again.
func Start(ctx context.Context, opts Options) (_ *ControlPlane, err error) {
	if opts.BinDir == "" {
		opts.BinDir, err = FindBinDir()
	} else {
		opts.BinDir, err = checkBinDir(opts.BinDir, "Options.BinDir")
	}
	if err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	if opts.StopGracePeriod <= 0 {
		opts.StopGracePeriod = 15 * time.Second
	}
	if opts.Node {
		if err = CheckNode(opts.BinDir); err != nil {
			return nil, fmt.Errorf("start control plane: %w", err)
		}
		opts.Controllers = true
	}

	cp := &ControlPlane{opts: opts, procs: map[string]*process{}}
	if opts.Dir == "" {
		cp.dir, err = os.MkdirTemp("", "kubetest-")
		if err != nil {
			return nil, fmt.Errorf("start control plane: create work dir: %w", err)
		}
		cp.removeDir = true
	} else {
		cp.dir, err = filepath.Abs(opts.Dir)
		if err == nil {
			err = os.MkdirAll(cp.dir, 0o755)
		}
		if err != nil {
			return nil, fmt.Errorf("start control plane: create work dir: %w", err)
		}
	}
	cp.sp = newSpawner()
	defer func() {
		if err != nil {
			_ = cp.Stop()
		}
	}()

	if err = os.RemoveAll(cp.etcdDataDir()); err != nil {
		return nil, fmt.Errorf("start control plane: clear etcd data: %w", err)
	}
	var podFacingIPs []net.IP
	if opts.Node {
		if cp.node, err = reserveNode(cp); err != nil {
			return nil, fmt.Errorf("start node: %w", err)
		}
		podFacingIPs = append(podFacingIPs, cp.node.HostIP())
	}
	if cp.pki, err = generatePKI(filepath.Join(cp.dir, "pki"), podFacingIPs...); err != nil {
		return nil, fmt.Errorf("start control plane: generate certificates: %w", err)
	}
	if err = cp.startEtcd(ctx); err != nil {
		return nil, fmt.Errorf("start %s: %w", Etcd, err)
	}
	if err = cp.startFirstAPIServer(ctx); err != nil {
		return nil, fmt.Errorf("start %s: %w", KubeAPIServer, err)
	}
	if opts.Controllers {
		if err = cp.startControllers(ctx); err != nil {
			return nil, err
		}
	}
	if cp.node != nil {
		if err := cp.node.start(ctx); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

// BinDir is the directory the control plane's binaries were taken from
// (kubectl is there too after `make node`).
func (cp *ControlPlane) BinDir() string { return cp.opts.BinDir }

// Dir is the control plane's working directory.
func (cp *ControlPlane) Dir() string { return cp.dir }

// Kubeconfig is the path of the admin kubeconfig (a client certificate in
// group system:masters, embedded in the file).
func (cp *ControlPlane) Kubeconfig() string { return cp.kubeconfig }

// RESTConfig returns a new copy of the admin client configuration.
func (cp *ControlPlane) RESTConfig() *rest.Config { return rest.CopyConfig(cp.restConfig) }

// Client is an admin clientset.
func (cp *ControlPlane) Client() kubernetes.Interface { return cp.client }

// APIServerURL is the https URL of kube-apiserver; it stays the same across
// StopAPIServer and StartAPIServer.
func (cp *ControlPlane) APIServerURL() string { return cp.restConfig.Host }

// EtcdURL is etcd's client URL.
func (cp *ControlPlane) EtcdURL() string { return cp.etcdURL }

// LogPath is the log file of a component (Etcd, KubeAPIServer, ...).
func (cp *ControlPlane) LogPath(component string) string {
	return filepath.Join(cp.dir, component+".log")
}

func (cp *ControlPlane) etcdDataDir() string { return filepath.Join(cp.dir, "etcd-data") }

// launch starts a component on fresh free ports and waits until ready says
// it is usable. A port picked free can be taken by someone else before the
// component binds it; when the component then fails with "address already
// in use", launch tries again with other ports.
func (cp *ControlPlane) launch(ctx context.Context, name string, nports int, args func(ports []int) []string,
	ready func(ctx context.Context, ports []int) error,
) ([]int, error) {
	const attempts = 3
	for attempt := 1; ; attempt++ {
		ports, err := freeport.Pick(nports)
		if err != nil {
			return nil, err
		}
		a := args(ports)
		p, err := cp.spawn(name, a)
		if err != nil {
			return nil, err
		}
		err = cp.waitReady(ctx, p, readyWhat[name], func(ctx context.Context) error { return ready(ctx, ports) })
		if err == nil {
			if name == KubeAPIServer {
				cp.apiArgs = a
			}
			return ports, nil
		}
		p.stop(cp.opts.StopGracePeriod)
		if attempt < attempts && strings.Contains(p.logSinceStart(), "address already in use") {
			continue
		}
		return nil, err
	}
}

func (cp *ControlPlane) spawn(name string, args []string) (*process, error) {
	return cp.spawnBin(name, filepath.Join(cp.opts.BinDir, name), args)
}

// spawnBin starts the program bin as the component name, logging to
// LogPath(name).
func (cp *ControlPlane) spawnBin(name, bin string, args []string) (*process, error) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.stopped {
		return nil, errors.New("control plane stopped")
	}
	if old := cp.procs[name]; old != nil {
		if done, _ := old.exited(); !done {
			return nil, errors.New("already running")
		}
	}
	p, err := startProcess(cp.sp, name, bin, args, cp.LogPath(name), cp.opts.Logs, cp.dir)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	cp.procs[name] = p
	return p, nil
}

// waitError is what waitReady returns; what names the check.
func waitError(what string, p *process, cause, last error) error {
	if last != nil && !errors.Is(cause, last) {
		return fmt.Errorf("wait for %s: %w; last check: %w (log: %s)", what, cause, last, p.logPath)
	}
	return fmt.Errorf("wait for %s: %w (log: %s)", what, cause, p.logPath)
}

// waitReady polls check until it succeeds, the process exits, the start
// timeout passes or ctx ends.
func (cp *ControlPlane) waitReady(ctx context.Context, p *process, what string, check func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, cp.opts.StartTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if done, err := p.exited(); done {
			return waitError(what, p, fmt.Errorf("%s %w", p.name, err), nil)
		}
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return waitError(what, p, ctx.Err(), last)
		case <-p.done:
		case <-tick.C:
		}
	}
}

var readyWhat = map[string]string{
	Etcd:                  "etcd /health",
	KubeAPIServer:         "/readyz",
	KubeControllerManager: "kube-controller-manager /healthz",
	KubeScheduler:         "kube-scheduler /healthz",
	Containerd:            "containerd (ctr version)",
	Kubelet:               "Node " + NodeName + " Ready",
}

// httpCheck GETs url with client and wants 200.
func httpCheck(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err = errors.Join(err, resp.Body.Close()); err != nil {
		return fmt.Errorf("GET %s: read response: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// insecureClient talks to the controllers' self-signed /healthz endpoints.
func insecureClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // local health checks only
		DisableKeepAlives: true,
	}}
}

func (cp *ControlPlane) startEtcd(ctx context.Context) error {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	ports, err := cp.launch(ctx, Etcd, 2, func(ports []int) []string {
		clientURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		return []string{
			"--name=kubetest",
			"--data-dir=" + cp.etcdDataDir(),
			"--listen-client-urls=" + clientURL,
			"--advertise-client-urls=" + clientURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=kubetest=" + peerURL,
			"--initial-cluster-state=new",
			// The data lives as long as the test; losing it on a crash is fine.
			"--unsafe-no-fsync=true",
			"--log-level=warn",
		}
	}, func(ctx context.Context, ports []int) error {
		return httpCheck(ctx, client, "http://127.0.0.1:"+strconv.Itoa(ports[0])+"/health")
	})
	if err != nil {
		return err
	}
	cp.etcdURL = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	return nil
}

func (cp *ControlPlane) apiServerArgs(port int) []string {
	p := cp.pki
	args := []string{
		"--etcd-servers=" + cp.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// A loopback address cannot back the "kubernetes" Service endpoints.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(cp.dir, "pki"),
		"--tls-cert-file=" + p.servingCert,
		"--tls-private-key-file=" + p.servingKey,
		"--client-ca-file=" + p.caCertFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.saPublicKey,
		"--service-account-signing-key-file=" + p.saPrivateKey,
		"--service-cluster-ip-range=" + serviceClusterIPRange,
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--profiling=false",
	}
	if cp.node != nil {
		// The kubelet registers NodeName, which no resolver knows: reach it
		// (for logs, exec) at its address.
		args = append(args, "--kubelet-preferred-address-types=InternalIP")
	}
	if d := cp.opts.EtcdCompactionInterval; d > 0 {
		args = append(args, "--etcd-compaction-interval="+d.String())
	}
	return append(args, cp.opts.ExtraAPIServerArgs...)
}

// readyzCheck asks kube-apiserver's /readyz with the admin credential.
func (cp *ControlPlane) readyzCheck(cfg *rest.Config) (func(ctx context.Context) error, func(), error) {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 5 * time.Second
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, nil, err
	}
	tr := &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}
	client := &http.Client{Transport: tr}
	return func(ctx context.Context) error {
		return httpCheck(ctx, client, cfg.Host+"/readyz")
	}, tr.CloseIdleConnections, nil
}

func (cp *ControlPlane) adminConfig(port int) *rest.Config {
	return &rest.Config{
		Host: "https://127.0.0.1:" + strconv.Itoa(port),
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   cp.pki.caCert,
			CertData: cp.pki.adminCert,
			KeyData:  cp.pki.adminKey,
		},
		QPS:   50,
		Burst: 100,
	}
}

func (cp *ControlPlane) startFirstAPIServer(ctx context.Context) error {
	ports, err := cp.launch(ctx, KubeAPIServer, 1, func(ports []int) []string {
		return cp.apiServerArgs(ports[0])
	}, func(ctx context.Context, ports []int) error {
		check, done, err := cp.readyzCheck(cp.adminConfig(ports[0]))
		if err != nil {
			return err
		}
		defer done()
		return check(ctx)
	})
	if err != nil {
		return err
	}
	cp.apiPort = ports[0]
	cp.restConfig = cp.adminConfig(cp.apiPort)
	if cp.client, err = kubernetes.NewForConfig(cp.RESTConfig()); err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	cp.kubeconfig = filepath.Join(cp.dir, "kubeconfig")
	if err := writeKubeconfig(cp.kubeconfig, cp.restConfig.Host, cp.pki.caCert, AdminUser, adminAuth(cp.pki)); err != nil {
		return fmt.Errorf("write admin kubeconfig: %w", err)
	}
	return nil
}

func (cp *ControlPlane) startControllers(ctx context.Context) error {
	hc := insecureClient()
	healthz := func(ctx context.Context, ports []int) error {
		return httpCheck(ctx, hc, "https://127.0.0.1:"+strconv.Itoa(ports[0])+"/healthz")
	}
	_, err := cp.launch(ctx, KubeControllerManager, 1, func(ports []int) []string {
		args := []string{
			"--kubeconfig=" + cp.kubeconfig,
			"--leader-elect=false",
			"--controllers=*",
			"--use-service-account-credentials=false",
			"--service-account-private-key-file=" + cp.pki.saPrivateKey,
			"--root-ca-file=" + cp.pki.caCertFile,
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(ports[0]),
			"--cert-dir=" + filepath.Join(cp.dir, "pki", KubeControllerManager),
		}
		if d := cp.opts.NodeMonitorGracePeriod; d > 0 {
			args = append(args, "--node-monitor-grace-period="+d.String())
		}
		return args
	}, healthz)
	if err != nil {
		return fmt.Errorf("start %s: %w", KubeControllerManager, err)
	}
	_, err = cp.launch(ctx, KubeScheduler, 1, func(ports []int) []string {
		return []string{
			"--kubeconfig=" + cp.kubeconfig,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(ports[0]),
			"--cert-dir=" + filepath.Join(cp.dir, "pki", KubeScheduler),
		}
	}, healthz)
	if err != nil {
		return fmt.Errorf("start %s: %w", KubeScheduler, err)
	}

	// Pods need their ServiceAccount (admission rejects them without it):
	// wait until kube-controller-manager has created "default/default".
	cp.mu.Lock()
	kcm := cp.procs[KubeControllerManager]
	cp.mu.Unlock()
	err = cp.waitReady(ctx, kcm, "ServiceAccount default/default", func(ctx context.Context) error {
		_, getErr := cp.client.CoreV1().ServiceAccounts(corev1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return getErr
	})
	if err != nil {
		return fmt.Errorf("start %s: %w", KubeControllerManager, err)
	}
	return nil
}
