package main

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report is everything a run prints.
type report struct {
	s         settings
	started   time.Time
	machine   machine
	commit    string
	storeTime time.Duration
	baseline  *baseline
	results   []result
	total     time.Duration
}

func newReport(s settings) *report {
	return &report{s: s, started: time.Now(), machine: readMachine(), commit: gitCommit()}
}

// machine describes where the run happened.
type machine struct {
	cpus    int
	model   string
	kernel  string
	goVer   string
	loadavg string
}

func readMachine() machine {
	m := machine{cpus: runtime.NumCPU(), goVer: runtime.Version(), model: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.loadavg = strings.Join(f[:3], " ")
		}
	}
	return m
}

// gitCommit is the checked-out commit, marked when the tree has changes.
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

// write appends the report to w (a builder: writing to it cannot fail).
func (r *report) write(w *strings.Builder) {
	s := r.s
	fmt.Fprintf(w, "\n    %s\n\n", s.command)
	peers := ""
	if _, p := r.split(); len(p) > 0 {
		peers = fmt.Sprintf("; the peers are collector-contrib's `k8s_events` and `k8sobjects` receivers %s built by ocb %s (tools/peer)",
			peerVersion, peerVersion)
	}
	fmt.Fprintf(w, "Run on %s: %d cores (`nproc`), CPU \"%s\" (/proc/cpuinfo), Linux %s, %s; "+
		"load average at the start %s (the machine is shared). Ours at commit %s%s. One run took %s.\n\n",
		r.started.UTC().Format("2006-01-02 15:04 MST"), r.machine.cpus, r.machine.model, r.machine.kernel, r.machine.goVer,
		r.machine.loadavg, r.commit, peers, r.total.Round(time.Second))
	compaction := "its default, 5m"
	if s.compaction > 0 {
		compaction = s.compaction.String()
	}
	fmt.Fprintf(w, "One etcd and kube-apiserver v1.37.2 (kubetest, `--etcd-compaction-interval`: %s); %s Events stored in "+
		"namespace `%s` (created in %s by %d parallel clients), then one collector at a time, each reading that namespace "+
		"with `auth_type: kubeConfig` (admin) and exporting with `otlp_http` (`compression: none`, `sending_queue: "+
		"{enabled: false}`, no processor) to an OTLP/HTTP endpoint in the benchmark; those with `storage` keep their "+
		"resume point in `file_storage`. Start it; it is ready when it delivers a marker Event created after it logged "+
		"\"Everything is ready\"; %s after its start, read its startup cost. Create %s Events at %s/s and wait until each "+
		"has arrived. Then three restarts, each on the process the one before started: create %s Events at %s/s, stop it "+
		"right after the last (SIGTERM; kill -9; SIGTERM across a compaction: once the Events below are created, compact "+
		"etcd up to its current revision, as kube-apiserver's compactor does, and restart kube-apiserver, so that neither "+
		"holds the revision of the stop: a stop of minutes), create %s Events while it is down, start it again, create %s "+
		"more once it delivers a marker, and count the three sets. CPU is utime+stime from /proc/<pid>/stat; peak RSS is "+
		"VmHWM; requests and bytes are kube-apiserver's own counters for `events` (core/v1 and events.k8s.io/v1): "+
		"`apiserver_request_total`, `apiserver_response_sizes_sum` (LIST) and `apiserver_watch_events_sizes_sum`. The "+
		"delay runs from the return of the Create call to the arrival of the record. Records are matched to Events by uid "+
		"and resourceVersion (ours: attributes; k8sobjects: read from the body, the whole Event), by uid for k8s_events "+
		"(its records carry the involved object's resourceVersion, not the Event's; each Event here is created once).\n\n",
		compaction, num(s.stored), benchNamespace, r.storeTime.Round(time.Second), s.workers, s.startup, num(s.fresh),
		num(int(s.rate)), num(s.edge), num(int(s.edgeRate)), num(s.down), num(s.edge))
	if s.pods > 0 {
		fmt.Fprintf(w, "Every Event is about one of %s Pods, in turn (Pending: there is no node), owned by %s ReplicaSets of as many "+
			"Deployments (%d Pods each), as their controllers would have made them; kube-apiserver's GETs of Pods and ReplicaSets "+
			"(the owners variant's lookups) are read from its `apiserver_request_total`.\n\n",
			num(s.pods), num((s.pods+podsPerWorkload-1)/podsPerWorkload), podsPerWorkload)
	}

	r.writeStartup(w)
	r.writeRun(w)
	r.writeRestarts(w)
	if r.baseline != nil {
		fmt.Fprintf(w, "\nFor scale: creating the same %s Events with no collector running cost kube-apiserver %s of CPU over %s (%s/s).\n",
			num(s.fresh), secs(r.baseline.apiCPU), secs(r.baseline.took), num(int(r.baseline.rate+0.5)))
	}
	var unexpected []string
	for _, x := range r.results {
		n := x.run.unexpected
		for _, rs := range x.restarts {
			n += rs.all().unexpected
		}
		if n > 0 || x.unreadable > 0 {
			unexpected = append(unexpected, fmt.Sprintf("%s: %d match no created Event, %d name none", x.v.name, n, x.unreadable))
		}
	}
	if len(unexpected) > 0 {
		fmt.Fprintf(w, "\nRecords the benchmark could not match: %s.\n", strings.Join(unexpected, "; "))
	}
	r.writeRatios(w)
	r.writeTargets(w)
}

// table prints a Markdown table with one column per variant.
type table struct {
	w       *strings.Builder
	results []result
}

func (r *report) table(w *strings.Builder, corner string) table {
	header := []string{corner}
	for _, x := range r.results {
		header = append(header, x.v.heading(r.s))
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	return table{w: w, results: r.results}
}

func (t table) row(name string, val func(*result) string) {
	cells := []string{name}
	for i := range t.results {
		cells = append(cells, val(&t.results[i]))
	}
	fmt.Fprintf(t.w, "| %s |\n", strings.Join(cells, " | "))
}

func (r *report) writeStartup(w *strings.Builder) {
	fmt.Fprintf(w, "Startup, with %s Events stored:\n\n", num(r.s.stored))
	t := r.table(w, fmt.Sprintf("first %s after the start", r.s.startup))
	t.row("start to first new Event delivered", func(x *result) string { return secs(x.startup.ready) })
	t.row("kube-apiserver CPU", func(x *result) string { return secs(x.startup.apiCPU) })
	t.row("LIST requests, bytes sent", func(x *result) string {
		return fmt.Sprintf("%s, %s", num(int(x.startup.api.requests["LIST"])), bytesText(x.startup.api.listBytes))
	})
	t.row("watches open at the end, notifications sent, bytes", func(x *result) string {
		a := x.startup.api
		return fmt.Sprintf("%s, %s, %s", num(int(a.watchesOpen)), num(int(a.watchEvents)), bytesText(a.watchBytes))
	})
	t.row("other requests for Events", func(x *result) string {
		var parts []string
		for _, verb := range slices.Sorted(maps.Keys(x.startup.api.requests)) {
			// A watch counts when it ends; POSTs are the benchmark's markers.
			if verb != "LIST" && verb != "POST" {
				parts = append(parts, fmt.Sprintf("%s %s", num(int(x.startup.api.requests[verb])), verb))
			}
		}
		if len(parts) == 0 {
			return "none"
		}
		return strings.Join(parts, ", ")
	})
	t.row("collector CPU", func(x *result) string { return secs(x.startup.colCPU) })
	t.row("collector peak RSS", func(x *result) string { return mib(x.startup.peakRSS) })
	fmt.Fprintf(w, "\nBytes are as kube-apiserver sent them: it compresses a response over 128 kB with gzip when the client accepts it, "+
		"as client-go does, so an unpaged list of many Events is sent compressed and decoded whole by the collector. "+
		"POST requests, the marker Events the benchmark creates once a second until one is delivered, are left out; "+
		"a watch request counts when it ends.\n\n")
}

func (r *report) writeRun(w *strings.Builder) {
	s := r.s
	fmt.Fprintf(w, "New Events while it runs:\n\n")
	t := r.table(w, fmt.Sprintf("%s stored, %s new at %s/s", num(s.stored), num(s.fresh), num(int(s.rate))))
	t.row("collector peak RSS (startup and new Events)", func(x *result) string { return mib(x.peakRSS) })
	t.row("collector CPU, initial sync and new Events", func(x *result) string { return secs(x.colCPUStart + x.colCPURun) })
	t.row("&nbsp;&nbsp;of which initial sync (start to first marker delivered)", func(x *result) string { return secs(x.colCPUStart) })
	t.row("&nbsp;&nbsp;of which the new Events", func(x *result) string { return secs(x.colCPURun) })
	t.row("kube-apiserver CPU, same window", func(x *result) string { return secs(x.apiCPUStart + x.apiCPURun) })
	t.row("&nbsp;&nbsp;of which initial sync", func(x *result) string { return secs(x.apiCPUStart) })
	t.row("&nbsp;&nbsp;of which the new Events", func(x *result) string { return secs(x.apiCPURun) })
	t.row("kube-apiserver GETs of Pods / ReplicaSets, same window (lookups)", func(x *result) string {
		return fmt.Sprintf("%s / %s", num(int(x.gets["pods"])), num(int(x.gets["replicasets"])))
	})
	t.row("window (initial sync, then first creation to last new Event delivered)", func(x *result) string { return secs(x.window) })
	t.row("new Events created at", func(x *result) string {
		return fmt.Sprintf("%s/s", num(int(float64(x.run.want)/x.createTook.Seconds()+0.5)))
	})
	t.row("delivered / lost / repeated", func(x *result) string {
		return fmt.Sprintf("%s / %s / %s", num(x.run.delivered), num(x.run.lost), num(x.run.repeated))
	})
	t.row("delay from creation to the sink, p50", func(x *result) string { return delay(percentile(x.run.delays, 0.50)) })
	t.row("delay, p99", func(x *result) string { return delay(percentile(x.run.delays, 0.99)) })
	t.row("delay, max", func(x *result) string { return delay(percentile(x.run.delays, 1)) })
	t.row("records matched by", func(x *result) string { return x.id.String() })
	fmt.Fprintln(w)
}

func (r *report) writeRestarts(w *strings.Builder) {
	s := r.s
	fmt.Fprintf(w, "Restarts: %s Events created before the stop, %s while stopped, %s after (%s in all):\n\n",
		num(s.edge), num(s.down), num(s.edge), num(2*s.edge+s.down))
	t := r.table(w, "stop")
	for i, k := range stopKinds {
		at := func(x *result) *restart {
			if i < len(x.restarts) {
				return &x.restarts[i]
			}
			return nil
		}
		cell := func(f func(*restart) string) func(*result) string {
			return func(x *result) string {
				if rs := at(x); rs != nil {
					return f(rs)
				}
				return "not run"
			}
		}
		t.row("**"+k.what+"**: delivered / lost / repeated", cell(func(rs *restart) string {
			a := rs.all()
			return fmt.Sprintf("%s / %s / %s", num(a.delivered), num(a.lost), num(a.repeated))
		}))
		t.row("&nbsp;&nbsp;lost before / while stopped / after", cell(func(rs *restart) string {
			return fmt.Sprintf("%s / %s / %s", num(rs.before.lost), num(rs.during.lost), num(rs.after.lost))
		}))
		t.row("&nbsp;&nbsp;earlier Events delivered again", cell(func(rs *restart) string { return num(rs.earlier) }))
		t.row("&nbsp;&nbsp;stop to first new Event delivered", cell(func(rs *restart) string {
			txt := secs(rs.down)
			if rs.stopErr != nil {
				txt += "; stop: " + rs.stopErr.Error()
			}
			return txt
		}))
	}
	fmt.Fprintln(w)
}

// ours and peers split the results.
func (r *report) split() (ours, peers []*result) {
	for i := range r.results {
		if r.results[i].v.peer {
			peers = append(peers, &r.results[i])
		} else {
			ours = append(ours, &r.results[i])
		}
	}
	return ours, peers
}

// writeRatios prints ours against each contrib variant of this run.
func (r *report) writeRatios(w *strings.Builder) {
	ours, peers := r.split()
	if len(ours) == 0 || len(peers) == 0 {
		return
	}
	fmt.Fprintf(w, "\nRatios, ours / contrib %s, in this run:\n\n", peerVersion)
	header := []string{"ours / contrib " + peerVersion}
	for _, p := range peers {
		header = append(header, p.v.heading(r.s))
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	rows := []struct {
		name string
		f    func(*result) float64
	}{
		{"peak RSS", func(x *result) float64 { return float64(x.peakRSS) }},
		{"collector CPU, initial sync and new Events", func(x *result) float64 { return (x.colCPUStart + x.colCPURun).Seconds() }},
		{"kube-apiserver CPU, same window", func(x *result) float64 { return (x.apiCPUStart + x.apiCPURun).Seconds() }},
		{"kube-apiserver CPU, first " + r.s.startup.String(), func(x *result) float64 { return x.startup.apiCPU.Seconds() }},
		{"bytes sent for Events, first " + r.s.startup.String(), func(x *result) float64 { return x.startup.api.listBytes + x.startup.api.watchBytes }},
		{"delay p99", func(x *result) float64 { return percentile(x.run.delays, 0.99).Seconds() }},
	}
	for _, o := range ours {
		for _, row := range rows {
			cells := []string{o.v.name + ": " + row.name}
			for _, p := range peers {
				cells = append(cells, ratio(row.f(o), row.f(p)))
			}
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
		}
	}
}

// writeTargets prints issue 10's targets for watch mode, against each contrib
// variant of this run.
func (r *report) writeTargets(w *strings.Builder) {
	var watch *result
	for i := range r.results {
		if r.results[i].v.name == "watch" {
			watch = &r.results[i]
		}
	}
	_, peers := r.split()
	if watch == nil || len(peers) == 0 {
		return
	}
	fmt.Fprintf(w, "\nTargets for watch mode (issue 10), ours in watch mode against each contrib variant of this run:\n\n")
	header := []string{"target"}
	for _, p := range peers {
		header = append(header, p.v.heading(r.s))
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	target := func(name string, f func(p *result) (string, bool)) {
		cells := []string{name}
		for _, p := range peers {
			v, ok := f(p)
			mark := "missed"
			if ok {
				mark = "met"
			}
			cells = append(cells, v+" ("+mark+")")
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	ratioTarget := func(name string, limit float64, f func(*result) float64) {
		target(name, func(p *result) (string, bool) {
			if f(p) == 0 {
				return "n/a (contrib: 0)", false
			}
			return ratio(f(watch), f(p)), f(watch)/f(p) <= limit
		})
	}
	ratioTarget("peak RSS ≤ 1/4 of contrib's", 0.25, func(x *result) float64 { return float64(x.peakRSS) })
	ratioTarget(fmt.Sprintf("collector CPU per %s Events ≤ 1/3 of contrib's (whole window)", num(r.s.fresh)), 1.0/3,
		func(x *result) float64 { return (x.colCPUStart + x.colCPURun).Seconds() / float64(max(1, x.run.want)) })
	ratioTarget("kube-apiserver CPU ≤ contrib's (whole window)", 1,
		func(x *result) float64 { return (x.apiCPUStart + x.apiCPURun).Seconds() })
	p99 := percentile(watch.run.delays, 0.99)
	lost := watch.run.lost
	rep := watch.run.repeated
	for _, rs := range watch.restarts {
		a := rs.all()
		lost, rep = lost+a.lost, rep+a.repeated+rs.earlier
	}
	fmt.Fprintf(w, "\nOurs in watch mode, on its own: p99 from creation to export %s at %s/s (target ≤ 250 ms: %s); "+
		"%s lost and %s repeated over the new Events and the three restarts (target 0 and 0, a kill -9 excepted: %s).\n",
		delay(p99), num(int(r.s.rate)), metText(p99 <= 250*time.Millisecond && watch.run.lost == 0),
		num(lost), num(rep), metText(lost == 0))
}

func metText(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

// bytesText prints a byte count in kB, MB or GB (powers of 1000).
func bytesText(b float64) string {
	switch {
	case b >= 1e9:
		return fmt.Sprintf("%.2f GB", b/1e9)
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", b/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.0f kB", b/1e3)
	default:
		return fmt.Sprintf("%.0f B", b)
	}
}

// ratio prints a/b with about three significant digits.
func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	switch q := a / b; {
	case q > 0 && q < 0.01:
		return "1/" + num(int(1/q+0.5))
	case q < 1:
		return fmt.Sprintf("%.3f", q)
	case q < 10:
		return fmt.Sprintf("%.2f", q)
	case q < 100:
		return fmt.Sprintf("%.1f", q)
	default:
		return num(int(q + 0.5))
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func mib(b int64) string { return num(int((b+1<<19)>>20)) + " MiB" }

// delay prints delays under a second in milliseconds, longer ones in seconds.
func delay(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// num prints n with thousands separators.
func num(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + num(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
