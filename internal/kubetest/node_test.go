package kubetest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// TestNode runs a Pod on a real node and checks that Stop leaves nothing
// of the node behind: no process, mount, cgroup, bridge or record.
func TestNode(t *testing.T) {
	begin := time.Now()
	cp := StartForTest(t, Options{Node: true})
	t.Logf("control plane and node ready after %v", time.Since(begin).Round(time.Millisecond))
	c := cp.Client()
	n := cp.Node()
	rec := n.rec

	ns := createNamespace(t, c, "work")
	pod := BusyboxPod(ns, "sleeper", "echo hello from the node; exec sleep 3600")
	if _, err := c.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var podIP string
	eventually(t, "pod sleeper Running", func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, "sleeper", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		podIP = p.Status.PodIP
		return p.Status.Phase == corev1.PodRunning, nil
	})
	if !n.PodSubnet().Contains(net.ParseIP(podIP)) {
		t.Errorf("pod IP %s is not in the node's pod network %s", podIP, n.PodSubnet())
	}
	logs, err := c.CoreV1().Pods(ns).GetLogs("sleeper", &corev1.PodLogOptions{Container: "main"}).DoRaw(t.Context())
	if err != nil {
		t.Fatalf("read the pod's log through the API server and the kubelet: %v", err)
	}
	if !strings.Contains(string(logs), "hello from the node") {
		t.Errorf("pod log %q, want the container's output", logs)
	}

	// The kubelet's own Events: about the Node and about the Pod.
	for _, want := range []struct{ kind, name, reason string }{
		{"Node", NodeName, "Starting"},
		{"Node", NodeName, "NodeReady"},
		{"Pod", "sleeper", "Started"},
	} {
		eventually(t, want.reason+" Event about "+want.kind+" "+want.name, func(ctx context.Context) (bool, error) {
			sel := fields.Set{"involvedObject.kind": want.kind, "involvedObject.name": want.name, "reason": want.reason}
			evs, err := c.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: sel.String()})
			if err != nil {
				return false, err
			}
			for _, e := range evs.Items {
				if e.Source.Component == "kubelet" && e.Source.Host == NodeName {
					return true, nil
				}
			}
			return false, nil
		})
	}

	// While it runs, the node has processes (containers, shims), mounts,
	// cgroups and a bridge.
	procs := cgroupProcs(rec.CgroupRoot)
	if len(procs) == 0 {
		t.Error("no process in the node's cgroups while a Pod runs")
	}
	// A Pod reaches this machine on its bridge, and nothing else: it has no
	// default route.
	for _, pid := range procs {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "net", "route"))
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[1] == "00000000" {
				t.Errorf("process %d of a Pod has a default route: %s", pid, line)
			}
		}
	}
	if len(mountsBelow(rec.Dir)) == 0 {
		t.Error("nothing mounted below the node's directory while a Pod runs")
	}
	if !linkExists(rec.Bridge) {
		t.Errorf("bridge %s missing while the node runs", rec.Bridge)
	}

	if err := cp.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// Its kubelet, containerd and shims name the node's directory in their
	// command line; the containers are in its cgroups.
	if pids := nodePIDs(rec); len(pids) > 0 {
		t.Errorf("processes of the node left after Stop: %v", pids)
	}
	if ms := mountsBelow(rec.Dir); len(ms) > 0 {
		t.Errorf("mounts left after Stop: %v", ms)
	}
	if linkExists(rec.Bridge) {
		t.Errorf("bridge %s left after Stop", rec.Bridge)
	}
	for _, mp := range cgroupMounts() {
		if _, err := os.Stat(filepath.Join(mp, rec.CgroupRoot)); err == nil {
			t.Errorf("cgroup %s left after Stop", filepath.Join(mp, rec.CgroupRoot))
		}
	}
	for _, p := range []string{rec.Dir, recordPath(rec.ID)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left after Stop", p)
		}
	}
	links, _ := filepath.Glob("/var/log/containers/*")
	for _, l := range links {
		if target, _ := os.Readlink(l); strings.HasPrefix(target, rec.Dir) {
			t.Errorf("container log link %s left after Stop", l)
		}
	}
}

// TestNodePackagesMatchMakefile: `make node` installs the packages that
// CheckNode asks for.
func TestNodePackagesMatchMakefile(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "mk", "node.mk"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if pkgs, ok := strings.CutPrefix(line, "NODE_PACKAGES :="); ok {
			if got := strings.Fields(pkgs); !slices.Equal(got, NodePackages) {
				t.Errorf("mk/node.mk installs %v; CheckNode wants %v", got, NodePackages)
			}
			return
		}
	}
	t.Fatal("no NODE_PACKAGES in mk/node.mk")
}
