package kubetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// registryDir records the nodes running on this machine, one JSON file per
// node, so that a node whose owner died without cleaning up (kill -9, a
// test binary's timeout panic) is cleaned up by the next node that starts,
// and so that several test processes pick different bridges and subnets.
// It is on tmpfs: a reboot, which also removes what it describes, clears it.
const registryDir = "/run/kubetest-node"

// nodeRecord is what a running node left on the machine, enough to remove
// it without its owner.
type nodeRecord struct {
	ID string `json:"id"`
	// OwnerPID and OwnerStart identify the process that started the node
	// (the start time tells a reused PID apart).
	OwnerPID   int    `json:"owner_pid"`
	OwnerStart uint64 `json:"owner_start"`
	// Dir holds containerd's root and state, the kubelet's root and the
	// logs; everything mounted below it is the node's.
	Dir        string `json:"dir"`
	Bridge     string `json:"bridge"`
	Subnet     string `json:"subnet"`
	CgroupRoot string `json:"cgroup_root"`
	// ContainerdAddress is the socket that the node's shims name in their
	// command line.
	ContainerdAddress string `json:"containerd_address"`
	// CNINetwork is the name of the node's CNI network.
	CNINetwork string `json:"cni_network"`
}

// lockRegistry takes the machine-wide node lock (flock on registryDir/lock)
// and returns its release.
func lockRegistry() (func(), error) {
	if err := os.MkdirAll(registryDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", registryDir, err)
	}
	f, err := os.OpenFile(filepath.Join(registryDir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open node lock: %w", err)
	}
	if err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return nil, errors.Join(fmt.Errorf("take node lock: %w", err), f.Close())
	}
	return func() {
		// Closing releases the lock too; an error here leaves nothing held.
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

func recordPath(id string) string { return filepath.Join(registryDir, "node-"+id+".json") }

func writeRecord(r nodeRecord) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(recordPath(r.ID), b, 0o644)
}

// records returns every node recorded on the machine. Call with the lock.
func records() ([]nodeRecord, error) {
	paths, err := filepath.Glob(filepath.Join(registryDir, "node-*.json"))
	if err != nil {
		return nil, err
	}
	var out []nodeRecord
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r nodeRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// processStart is the start time of a process (field 22 of /proc/PID/stat,
// in clock ticks since boot), or 0 when there is no such process.
func processStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; the fields after it do not.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(fields[19], 10, 64)
	return v
}

func (r nodeRecord) ownerAlive() bool {
	return r.OwnerStart != 0 && processStart(r.OwnerPID) == r.OwnerStart
}

// sweepStaleNodes removes the nodes whose owner is gone. Call with the lock.
func sweepStaleNodes() error {
	rs, err := records()
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range rs {
		if r.ownerAlive() {
			continue
		}
		if err := cleanupNode(r); err != nil {
			errs = append(errs, fmt.Errorf("clean up node %s left by process %d: %w", r.ID, r.OwnerPID, err))
			continue
		}
		if err := os.Remove(recordPath(r.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// The kubelet and CNI change host settings that outlive them: sysctls (the
// kubelet sets its six to what it wants unless protectKernelDefaults, which
// instead refuses to start when they differ; the bridge plugin turns on IP
// forwarding), and iptables chains and rules (the kubelet's KUBE-FIREWALL
// and two marker chains). The first node on the machine saves how they were;
// the last one to stop puts them back.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
	"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding",
}

// hostState is how the machine was before the first node started.
type hostState struct {
	Sysctls map[string]string `json:"sysctls"`
	// Iptables lists, per command (iptables, ip6tables), whether the
	// kubelet's chains were absent: only those are removed again.
	KubeletChainsAbsent map[string]bool `json:"kubelet_chains_absent"`
	// AbsentDirs are directories outside the nodes that the kubelet or CNI
	// create and that did not exist: removed again when empty.
	AbsentDirs []string `json:"absent_dirs"`
}

// outsideDirs are the directories the kubelet (its container log links)
// and CNI (its result cache) create outside a node's directory.
var outsideDirs = []string{"/var/log/containers", "/var/lib/cni/results", "/var/lib/cni"}

func hostStatePath() string { return filepath.Join(registryDir, "host.json") }

// saveHostState records the host settings unless a record exists already
// (left by nodes that never restored it: it holds the original values).
// Call with the lock, when no node is running.
func saveHostState() error {
	if _, err := os.Stat(hostStatePath()); err == nil {
		return nil
	}
	hs := hostState{Sysctls: map[string]string{}, KubeletChainsAbsent: map[string]bool{}}
	for _, k := range kubeletSysctls {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err == nil {
			hs.Sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	for _, ipt := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(ipt); err != nil {
			continue
		}
		// -n -L on a missing chain fails.
		hs.KubeletChainsAbsent[ipt] = exec.Command(ipt, "-w", "-t", "mangle", "-n", "-L", "KUBE-IPTABLES-HINT").Run() != nil
	}
	for _, d := range outsideDirs {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			hs.AbsentDirs = append(hs.AbsentDirs, d)
		}
	}
	b, err := json.MarshalIndent(hs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(hostStatePath(), b, 0o644)
}

// restoreHostState puts the saved host settings back and removes the
// record. Call with the lock, when no node is running.
func restoreHostState() error {
	b, err := os.ReadFile(hostStatePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var hs hostState
	if err := json.Unmarshal(b, &hs); err != nil {
		return fmt.Errorf("read %s: %w", hostStatePath(), err)
	}
	var errs []error
	for k, v := range hs.Sysctls {
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s: %w", k, err))
		}
	}
	for ipt, absent := range hs.KubeletChainsAbsent {
		if absent {
			removeKubeletChains(ipt)
		}
	}
	for _, d := range hs.AbsentDirs {
		_ = os.Remove(d) // only when empty
	}
	if err := os.Remove(hostStatePath()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeKubeletChains deletes what the kubelet's syncIPTablesRules adds.
// Each step may fail because the kubelet never got that far: ignored.
func removeKubeletChains(ipt string) {
	run := func(args ...string) { _ = exec.Command(ipt, append([]string{"-w"}, args...)...).Run() }
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		// Once per jump that the kubelet prepended; it adds at most one.
		run("-t", "filter", "-D", chain, "-j", "KUBE-FIREWALL")
	}
	run("-t", "filter", "-F", "KUBE-FIREWALL")
	run("-t", "filter", "-X", "KUBE-FIREWALL")
	run("-t", "mangle", "-X", "KUBE-IPTABLES-HINT")
	for _, table := range []string{"mangle", "nat", "filter"} {
		run("-t", table, "-X", "KUBE-KUBELET-CANARY")
	}
}
