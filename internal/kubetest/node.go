package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8sevents/otelcol-k8sevents/internal/ociimage"
)

// NodeName is the name the node's kubelet registers.
const NodeName = "node-1"

// Component names of the node, also the base names of their log files.
const (
	Containerd = "containerd"
	Kubelet    = "kubelet"
)

// NodePackages are the Debian packages a node needs. `make node` installs
// them with apt-get when it runs as root.
var NodePackages = []string{"containerd", "runc", "containernetworking-plugins", "busybox-static", "iproute2"}

// cniBinDir is where Debian's containernetworking-plugins installs them.
const cniBinDir = "/usr/lib/cni"

// dataRoot holds each node's containerd root and state, kubelet root and
// pod logs, in a directory named after the node. A short path: unix socket
// paths below it must stay under 108 bytes.
const dataRoot = "/var/lib/kubetest-node"

// ErrNoNode is wrapped by CheckNode's and Start's errors when this machine
// cannot run a node: not root, or a package or the kubelet missing.
var ErrNoNode = errors.New("cannot run a node here")

// CheckNode returns nil when this machine can run a node with the kubelet
// in binDir, and otherwise an error, wrapping ErrNoNode, that says what is
// missing and how to get it.
func CheckNode(binDir string) error {
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("%w: a node (containerd, kubelet) needs root; running as uid %d", ErrNoNode, uid)
	}
	var missing []string
	for _, prog := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc", "ip"} {
		if _, err := exec.LookPath(prog); err != nil {
			missing = append(missing, prog)
		}
	}
	for _, f := range []string{cniBinDir + "/bridge", cniBinDir + "/host-local", cniBinDir + "/loopback"} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	if err := ociimage.CheckStatic(busyboxPath); err != nil {
		missing = append(missing, "a static "+busyboxPath)
	}
	var errs []string
	if len(missing) > 0 {
		errs = append(errs, fmt.Sprintf("missing %s (Debian packages: %s; `make node` installs them as root)",
			strings.Join(missing, ", "), strings.Join(NodePackages, " ")))
	}
	if st, err := os.Stat(filepath.Join(binDir, Kubelet)); err != nil || st.Mode()&0o111 == 0 {
		errs = append(errs, fmt.Sprintf("no kubelet in %s (`make node` builds it)", binDir))
	}
	if len(cgroupMounts()) == 0 {
		errs = append(errs, "no cgroup file system mounted")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrNoNode, strings.Join(errs, "; "))
	}
	return nil
}

// Node is a kubelet with a containerd of its own, registered as NodeName,
// that runs the control plane's Pods for real: each Pod in its own network
// namespace on the node's bridge, with the cgroups, mounts and Events of a
// real node. Stop (of the control plane) removes every trace of it.
type Node struct {
	cp    *ControlPlane
	rec   nodeRecord
	net   nodeNet
	proxy *tcpProxy

	kubeletPort int
	stopped     bool
	stopErr     error
}

// Node returns the control plane's node, or nil when Options.Node is false.
func (cp *ControlPlane) Node() *Node { return cp.node }

// Name is the Node's name.
func (n *Node) Name() string { return NodeName }

// HostIP is this machine's address on the node's pod network (the bridge's
// gateway, also the Node's InternalIP). Pods reach a listener on it; they
// reach nothing outside this machine.
func (n *Node) HostIP() net.IP { return n.net.gateway }

// PodSubnet is the node's pod network.
func (n *Node) PodSubnet() *net.IPNet { return n.net.subnet }

// APIServerAddr is where Pods reach kube-apiserver: a port on HostIP
// forwarded to the API server. Its serving certificate names HostIP. There
// is no kube-proxy, so the kubernetes Service's address does not route:
// Pods that talk to the API server need KUBERNETES_SERVICE_HOST and
// KUBERNETES_SERVICE_PORT set to this address.
func (n *Node) APIServerAddr() *net.TCPAddr { return n.proxy.Addr() }

// KubeletRootDir is the kubelet's --root-dir: Pod volumes (the projected
// ServiceAccount token among them) are below pods/<uid>/volumes.
func (n *Node) KubeletRootDir() string { return filepath.Join(n.rec.Dir, "kubelet") }

func (n *Node) logf(format string, args ...any) {
	if n.cp.opts.Logs != nil {
		_, _ = fmt.Fprintf(n.cp.opts.Logs, "[kubetest] "+format+"\n", args...) // a copy of the log; the node goes on without it
	}
}

// reserveNode records a new node on the machine, after removing what dead
// owners left, and creates its bridge: its gateway address must be known
// before the API server's certificate is made.
func reserveNode(cp *ControlPlane) (*Node, error) {
	idb := make([]byte, 3)
	if _, err := rand.Read(idb); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(idb)
	unlock, err := lockRegistry()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err = sweepStaleNodes(); err != nil {
		// What is left belongs to nobody; a new node can still start.
		fmt.Fprintf(os.Stderr, "kubetest: %v\n", err)
	}
	if err = sweepOrphanDirs(); err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: %v\n", err)
	}
	live, err := records()
	if err != nil {
		return nil, err
	}
	if len(live) == 0 {
		if err = saveHostState(); err != nil {
			return nil, fmt.Errorf("save host settings: %w", err)
		}
	}
	nn, err := allocateNet(id)
	if err != nil {
		return nil, fmt.Errorf("pod network: %w", err)
	}
	pid := os.Getpid()
	n := &Node{cp: cp, net: nn, rec: nodeRecord{
		ID:                id,
		OwnerPID:          pid,
		OwnerStart:        processStart(pid),
		Dir:               filepath.Join(dataRoot, id),
		Bridge:            nn.bridge,
		Subnet:            nn.subnet.String(),
		CgroupRoot:        "/kubetest-" + id,
		ContainerdAddress: filepath.Join(dataRoot, id, "containerd.sock"),
		CNINetwork:        "kubetest-" + id,
	}}
	if err := writeRecord(n.rec); err != nil {
		_ = deleteLink(nn.bridge)
		return nil, fmt.Errorf("record node: %w", err)
	}
	trackNode(cp, true)
	return n, nil
}

// sweepOrphanDirs removes node directories that no record names (their
// records went with a reboot). Call with the lock.
func sweepOrphanDirs() error {
	rs, err := records()
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, r := range rs {
		known[r.Dir] = true
	}
	dirs, _ := filepath.Glob(filepath.Join(dataRoot, "*"))
	var errs []error
	for _, d := range dirs {
		if !known[d] {
			errs = append(errs, cleanupNode(nodeRecord{Dir: d}))
		}
	}
	return errors.Join(errs...)
}

// start starts containerd and the kubelet and waits until the Node is
// Ready. The control plane is up.
func (n *Node) start(ctx context.Context) error {
	cp := n.cp
	for _, d := range []string{n.rec.Dir, filepath.Join(n.rec.Dir, "cni"), n.KubeletRootDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("start node: %w", err)
		}
	}
	if err := createCgroupRoot(n.rec.CgroupRoot); err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	proxy, err := startTCPProxy(net.JoinHostPort(n.net.gateway.String(), "0"), strings.TrimPrefix(cp.restConfig.Host, "https://"))
	if err != nil {
		return fmt.Errorf("start node: API server address for Pods: %w", err)
	}
	n.proxy = proxy
	if err := n.startContainerd(ctx); err != nil {
		return fmt.Errorf("start %s: %w", Containerd, err)
	}
	if err := n.startKubelet(ctx); err != nil {
		return fmt.Errorf("start %s: %w", Kubelet, err)
	}
	return nil
}

// createCgroupRoot creates the kubelet's --cgroup-root in every hierarchy
// (the kubelet refuses one that does not exist). A new cpuset cgroup has no
// CPUs or memory nodes: give it its parent's.
func createCgroupRoot(root string) error {
	for _, mp := range cgroupMounts() {
		dir := filepath.Join(mp, root)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if b, err := os.ReadFile(filepath.Join(mp, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return fmt.Errorf("set %s of %s: %w", f, dir, err)
				}
			}
		}
	}
	return nil
}

func (n *Node) startContainerd(ctx context.Context) error {
	cp := n.cp
	config := filepath.Join(n.rec.Dir, "containerd.toml")
	if err := os.WriteFile(config, []byte(n.containerdConfig()), 0o644); err != nil {
		return err
	}
	conflist := filepath.Join(n.rec.Dir, "cni", "10-kubetest.conflist")
	if err := os.WriteFile(conflist, []byte(n.cniConfig()), 0o644); err != nil {
		return err
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return err
	}
	p, err := cp.spawnBin(Containerd, bin, []string{"--config", config, "--log-level", "warn"})
	if err != nil {
		return err
	}
	err = cp.waitReady(ctx, p, readyWhat[Containerd], func(ctx context.Context) error {
		_, cerr := n.ctr(ctx, "version")
		return cerr
	})
	if err != nil {
		return err
	}
	tarball := filepath.Join(n.rec.Dir, "busybox.tar")
	if err := writeBusyboxImage(tarball); err != nil {
		return fmt.Errorf("write %s: %w", BusyboxImage, err)
	}
	return n.ImportImage(ctx, tarball)
}

// containerdConfig is containerd's configuration: everything it keeps
// below the node's directory, the sandbox image imported by kubetest, CNI
// from Debian's plugins with the node's bridge.
func (n *Node) containerdConfig() string {
	d := n.rec.Dir
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
# Plugins that would write outside the node's directory, or need what is
# not here.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = %[3]q

[ttrpc]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[4]q
  # Some machines refuse a negative oom_score_adj even to root; without this
  # every sandbox fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  # Network namespaces below the state directory, not in /var/run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[5]q
    conf_dir = %[6]q
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # runc's state, by default in /run/containerd/runc.
        Root = %[7]q
        SystemdCgroup = false
`, filepath.Join(d, "containerd", "root"), filepath.Join(d, "containerd", "state"), n.rec.ContainerdAddress,
		BusyboxImage, cniBinDir, filepath.Join(d, "cni"), filepath.Join(d, "containerd", "runc"))
}

// cniConfig is the pod network: the node's bridge, addresses from its
// subnet, no default route and no masquerading (Pods reach this machine,
// nothing else).
func (n *Node) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "dataDir": %q
      }
    }
  ]
}
`, n.rec.CNINetwork, n.net.bridge, n.net.subnet.String(), n.net.gateway.String(), filepath.Join(n.rec.Dir, "cni-ipam"))
}

func (n *Node) startKubelet(ctx context.Context) error {
	cp := n.cp
	config := filepath.Join(n.rec.Dir, "kubelet.yaml")
	// The configuration names the ports that launch picks.
	var writeErr error
	ready := func(ctx context.Context, _ []int) error {
		if writeErr != nil {
			return fmt.Errorf("write %s: %w", config, writeErr)
		}
		node, err := cp.client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("node %s: Ready %s: %s", NodeName, c.Status, c.Message)
			}
		}
		return fmt.Errorf("node %s: no Ready condition yet", NodeName)
	}
	ports, err := cp.launch(ctx, Kubelet, 2, func(ports []int) []string {
		writeErr = os.WriteFile(config, []byte(n.kubeletConfig(ports[0], ports[1])), 0o644)
		return []string{
			"--config=" + config,
			"--kubeconfig=" + cp.kubeconfig,
			"--hostname-override=" + NodeName,
			"--node-ip=" + n.net.gateway.String(),
			"--root-dir=" + n.KubeletRootDir(),
			"--cert-dir=" + filepath.Join(n.rec.Dir, "kubelet-pki"),
			"--v=1",
		}
	}, ready)
	if err != nil {
		return err
	}
	n.kubeletPort = ports[0]
	return nil
}

// kubeletConfig is the KubeletConfiguration: cgroupfs below the node's own
// cgroup root (this kernel may mount cgroup v1), the node's containerd, no
// authentication of its API (it listens on the node address only), no
// eviction or image garbage collection that a busy test machine could set
// off, and every path below the node's directory.
func (n *Node) kubeletConfig(port, healthzPort int) string {
	d := n.rec.Dir
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[3]d
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
cgroupRoot: %[4]s
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%[5]s
# No DNS server runs: Pods get the node address as their resolver, so names
# do not resolve, and no MissingClusterDNS Events are reported.
clusterDomain: cluster.local
clusterDNS: [%[1]s]
podLogsDir: %[6]s
volumePluginDir: %[7]s
enforceNodeAllocatable: []
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.available: 1%%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
rotateCertificates: false
shutdownGracePeriod: 0s
`, n.net.gateway, port, healthzPort, n.rec.CgroupRoot, n.rec.ContainerdAddress,
		filepath.Join(d, "pod-logs"), filepath.Join(d, "volume-plugins"))
}

// stop stops the kubelet and containerd and removes everything the node
// made. Call with cp.mu held.
func (n *Node) stop(grace time.Duration) error {
	if n.stopped {
		return n.stopErr
	}
	n.stopped = true
	defer trackNode(n.cp, false)
	for _, name := range []string{Kubelet, Containerd} {
		if p := n.cp.procs[name]; p != nil {
			p.stop(grace)
		}
	}
	var errs []error
	if n.proxy != nil {
		errs = append(errs, n.proxy.Close())
	}
	unlock, err := lockRegistry()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer unlock()
	if err := cleanupNode(n.rec); err != nil {
		errs = append(errs, fmt.Errorf("clean up node: %w", err))
	} else if err := os.Remove(recordPath(n.rec.ID)); err != nil {
		errs = append(errs, err)
	}
	if live, err := records(); err == nil && len(live) == 0 {
		errs = append(errs, restoreHostState())
	}
	n.stopErr = errors.Join(errs...)
	return n.stopErr
}
