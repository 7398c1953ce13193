package kubetest

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cleanupNode removes everything a node left on the machine, whether its
// owner stopped it or died: the processes in its cgroups (containers and
// sandboxes), its kubelet, containerd and shims (every process whose command
// line names its directory), every mount below its directory (container
// root filesystems, network namespaces, volumes), its bridge, its cgroups,
// the files the kubelet and CNI keep outside it, and finally the directory.
// It reports what it could not remove.
func cleanupNode(r nodeRecord) error {
	var errs []error
	for range 3 {
		killCgroupProcs(r.CgroupRoot)
		killByCmdline(r.Dir)
		if waitGone(r, 10*time.Second) {
			break
		}
	}
	if pids := nodePIDs(r); len(pids) > 0 {
		errs = append(errs, fmt.Errorf("processes still running: %v", pids))
	}
	removeShimSockets(filepath.Join(r.Dir, "containerd", "state"))
	if err := unmountBelow(r.Dir); err != nil {
		errs = append(errs, err)
	}
	if err := deleteLink(r.Bridge); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroups(r.CgroupRoot); err != nil {
		errs = append(errs, err)
	}
	removeOutsideFiles(r)
	if len(errs) == 0 {
		if err := os.RemoveAll(r.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", r.Dir, err))
		}
	}
	return errors.Join(errs...)
}

// cgroupMounts returns the mount points of the cgroup hierarchies (v1 and
// v2).
func cgroupMounts() []string {
	var out []string
	for _, m := range mountInfo() {
		if m.fstype == "cgroup" || m.fstype == "cgroup2" {
			out = append(out, m.point)
		}
	}
	return out
}

// cgroupProcs returns the processes in the cgroup subtree root (a path
// such as /kubetest-ab12cd) of every hierarchy.
func cgroupProcs(root string) []int {
	if root == "" || root == "/" {
		return nil
	}
	seen := map[int]bool{}
	for _, mp := range cgroupMounts() {
		_ = filepath.WalkDir(filepath.Join(mp, root), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for f := range strings.FieldsSeq(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		out = append(out, pid)
	}
	slices.Sort(out)
	return out
}

func killCgroupProcs(root string) {
	for _, pid := range cgroupProcs(root) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// cmdlinePIDs returns the processes (other than this one) whose command
// line contains s.
func cmdlinePIDs(s string) []int {
	if s == "" {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		if strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), s) {
			out = append(out, pid)
		}
	}
	return out
}

func killByCmdline(dir string) {
	for _, pid := range cmdlinePIDs(dir + "/") {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func nodePIDs(r nodeRecord) []int {
	return append(cgroupProcs(r.CgroupRoot), cmdlinePIDs(r.Dir+"/")...)
}

// waitGone waits up to d for the node's processes to end.
func waitGone(r nodeRecord, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if len(nodePIDs(r)) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeShimSockets removes the sockets of the node's shims. A shim keeps
// its socket in /run/containerd/s (whatever containerd's state directory)
// and writes its address into the task's bundle; a killed shim leaves it.
func removeShimSockets(state string) {
	addrs, _ := filepath.Glob(filepath.Join(state, "io.containerd.runtime.v2.task", "*", "*", "address"))
	for _, a := range addrs {
		b, err := os.ReadFile(a)
		if err != nil {
			continue
		}
		sock := strings.TrimPrefix(strings.TrimSpace(string(b)), "unix://")
		if strings.HasPrefix(sock, "/run/containerd/s/") {
			_ = os.Remove(sock)
		}
	}
	// Only when empty: a containerd of the machine may use them.
	_ = os.Remove("/run/containerd/s")
	_ = os.Remove("/run/containerd")
}

type mount struct{ point, fstype string }

// mountInfo returns this process's mounts (its mount namespace is the
// machine's: the node's mounts are made there).
func mountInfo() []mount {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }() // read-only: nothing is lost if closing fails
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent major:minor root point options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		out = append(out, mount{point: unescapeMount(fields[4]), fstype: fields[sep+1]})
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountsBelow returns the mount points at or below dir, deepest first.
func mountsBelow(dir string) []string {
	var out []string
	for _, m := range mountInfo() {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			out = append(out, m.point)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// unmountBelow detaches every mount at or below dir; a mount point may be
// stacked, so it repeats until none is left.
func unmountBelow(dir string) error {
	if dir == "" || dir == "/" {
		return nil
	}
	for range 20 {
		ms := mountsBelow(dir)
		if len(ms) == 0 {
			return nil
		}
		for _, m := range ms {
			_ = syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
	if ms := mountsBelow(dir); len(ms) > 0 {
		return fmt.Errorf("still mounted below %s: %v", dir, ms)
	}
	return nil
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

func deleteLink(name string) error {
	if name == "" || !linkExists(name) {
		return nil
	}
	if out, err := exec.Command("ip", "link", "delete", name).CombinedOutput(); err != nil && linkExists(name) {
		return fmt.Errorf("delete link %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// removeCgroups removes the cgroup subtree root in every hierarchy,
// deepest first. A cgroup whose last process just died may be busy for a
// moment, so it tries for a while.
func removeCgroups(root string) error {
	if root == "" || root == "/" {
		return nil
	}
	var left []string
	for attempt := range 50 {
		left = left[:0]
		for _, mp := range cgroupMounts() {
			var dirs []string
			_ = filepath.WalkDir(filepath.Join(mp, root), func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			for i := len(dirs) - 1; i >= 0; i-- {
				if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
					left = append(left, dirs[i])
				}
			}
		}
		if len(left) == 0 {
			return nil
		}
		if attempt%10 == 9 {
			killCgroupProcs(root)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroups: %d left, e.g. %s", len(left), left[0])
}

// removeOutsideFiles removes what the node wrote outside its directory:
// the kubelet's links in /var/log/containers, which point into the node's
// pod logs, and CNI's cached results in /var/lib/cni/results, named after
// the network or the sandbox.
func removeOutsideFiles(r nodeRecord) {
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, r.Dir+"/") {
			_ = os.Remove(l)
		}
	}
	var cached []string
	if r.CNINetwork != "" {
		cached, _ = filepath.Glob(filepath.Join("/var/lib/cni/results", r.CNINetwork+"-*"))
	}
	// containerd's loopback network of each sandbox: cni-loopback-<id>-lo.
	sandboxes, _ := filepath.Glob(filepath.Join(r.Dir, "containerd", "root", "io.containerd.grpc.v1.cri", "sandboxes", "*"))
	tasks, _ := filepath.Glob(filepath.Join(r.Dir, "containerd", "state", "io.containerd.runtime.v2.task", "*", "*"))
	for _, p := range append(sandboxes, tasks...) {
		cached = append(cached, filepath.Join("/var/lib/cni/results", "cni-loopback-"+filepath.Base(p)+"-lo"))
	}
	for _, c := range cached {
		_ = os.Remove(c)
	}
}
