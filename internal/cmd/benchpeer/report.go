package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
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

func (r *report) peer() *result {
	for i := range r.results {
		if r.results[i].variant == variantPeer {
			return &r.results[i]
		}
	}
	return nil
}

// write appends the report to w (a builder: writing to it cannot fail).
func (r *report) write(w *strings.Builder) {
	s := r.s
	p := r.peer()
	fmt.Fprintf(w, "\n    %s\n\n", s.command)
	fmt.Fprintf(w, "Run on %s: %d cores (`nproc`), CPU \"%s\" (/proc/cpuinfo), Linux %s, %s; "+
		"load average at the start %s (the machine is shared). Ours at commit %s; the peer is the collector-contrib "+
		"`k8s_events` receiver v0.148.0 built by ocb v0.148.0 (tools/peer). One run took %s.\n\n",
		r.started.UTC().Format("2006-01-02 15:04 MST"), r.machine.cpus, r.machine.model, r.machine.kernel, r.machine.goVer,
		r.machine.loadavg, r.commit, r.total.Round(time.Second))
	fmt.Fprintf(w, "One etcd and kube-apiserver v1.37.2 (kubetest); %s Events stored in namespace `%s` (created in %s by %d "+
		"parallel clients), then one collector at a time: start it, wait until it delivers a marker Event created after "+
		"it logged \"Everything is ready\" (its initial sync is done), create %s Events at %s/s, wait until each has "+
		"arrived, stop it with SIGTERM, create %s Events, start it again and count those. Both read the namespace with "+
		"`auth_type: kubeConfig` (admin) and export with `otlp_http` (`compression: none`, `sending_queue: {enabled: false}`, "+
		"no processor) to an OTLP/HTTP endpoint in the benchmark; ours keeps its resume point in `file_storage`, "+
		"the peer has none. CPU is utime+stime from /proc/<pid>/stat; peak RSS is VmHWM before the stop; "+
		"the delay runs from the return of the Create call to the arrival of the record. Records are matched to Events "+
		"by uid and resourceVersion for ours, by uid for the peer (it does not report the Event's resourceVersion; "+
		"each Event here is created once).\n\n",
		num(s.stored), benchNamespace, r.storeTime.Round(time.Second), s.workers, num(s.fresh), num(int(s.rate)), num(s.down))
	if s.pods > 0 {
		fmt.Fprintf(w, "Every Event is about one of %s Pods, in turn (Pending: there is no node), owned by %s ReplicaSets of as many "+
			"Deployments (%d Pods each), as their controllers would have made them; kube-apiserver's GETs of Pods and ReplicaSets are "+
			"read from its `apiserver_request_total`.\n\n", num(s.pods), num((s.pods+podsPerWorkload-1)/podsPerWorkload), podsPerWorkload)
	}

	// The table: one column per variant, then one ratio column per ours.
	header := []string{fmt.Sprintf("%s stored, %s new at %s/s", num(s.stored), num(s.fresh), num(int(s.rate)))}
	var ours []*result
	for i := range r.results {
		header = append(header, variantTitle(r.results[i].variant, s))
		if r.results[i].variant != variantPeer {
			ours = append(ours, &r.results[i])
		}
	}
	if p != nil {
		for _, o := range ours {
			header = append(header, o.variant+" / peer")
		}
	}
	row := func(name string, val func(*result) string, ratio func(o, p *result) string) {
		cells := []string{name}
		for i := range r.results {
			cells = append(cells, val(&r.results[i]))
		}
		if p != nil {
			for _, o := range ours {
				if ratio == nil {
					cells = append(cells, "")
				} else {
					cells = append(cells, ratio(o, p))
				}
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	durRatio := func(f func(*result) time.Duration) func(o, p *result) string {
		return func(o, p *result) string { return ratio(float64(f(o)), float64(f(p))) }
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	peakRSSOf := func(x *result) time.Duration { return time.Duration(x.peakRSS) }
	row("collector peak RSS", func(x *result) string { return mib(x.peakRSS) }, durRatio(peakRSSOf))
	colTotal := func(x *result) time.Duration { return x.colCPUStart + x.colCPURun }
	apiTotal := func(x *result) time.Duration { return x.apiCPUStart + x.apiCPURun }
	row("collector CPU, start to last new Event delivered", func(x *result) string { return secs(colTotal(x)) }, durRatio(colTotal))
	row("&nbsp;&nbsp;of which initial sync (start to first marker delivered)", func(x *result) string { return secs(x.colCPUStart) },
		durRatio(func(x *result) time.Duration { return x.colCPUStart }))
	row("&nbsp;&nbsp;of which the new Events", func(x *result) string { return secs(x.colCPURun) },
		durRatio(func(x *result) time.Duration { return x.colCPURun }))
	row("kube-apiserver CPU, same window", func(x *result) string { return secs(apiTotal(x)) }, durRatio(apiTotal))
	row("&nbsp;&nbsp;of which initial sync", func(x *result) string { return secs(x.apiCPUStart) },
		durRatio(func(x *result) time.Duration { return x.apiCPUStart }))
	row("&nbsp;&nbsp;of which the new Events", func(x *result) string { return secs(x.apiCPURun) },
		durRatio(func(x *result) time.Duration { return x.apiCPURun }))
	row("kube-apiserver GETs of Pods / ReplicaSets, same window (lookups)", func(x *result) string {
		return fmt.Sprintf("%s / %s", num(x.gets["pods"]), num(x.gets["replicasets"]))
	}, nil)
	row("window (start to last new Event delivered)", func(x *result) string { return secs(x.window) }, nil)
	row("start to first marker delivered", func(x *result) string { return secs(x.ready) }, nil)
	row("new Events created at", func(x *result) string {
		return fmt.Sprintf("%s/s", num(int(float64(x.run.want)/x.createTook.Seconds()+0.5)))
	}, nil)
	row("delivered / lost / repeated", func(x *result) string {
		return fmt.Sprintf("%s / %s / %s", num(x.run.delivered), num(x.run.lost), num(x.run.repeated))
	}, nil)
	row("delay from creation to the sink, p50", func(x *result) string { return delay(percentile(x.run.delays, 0.50)) },
		durRatio(func(x *result) time.Duration { return percentile(x.run.delays, 0.50) }))
	row("delay, p99", func(x *result) string { return delay(percentile(x.run.delays, 0.99)) },
		durRatio(func(x *result) time.Duration { return percentile(x.run.delays, 0.99) }))
	row("delay, max", func(x *result) string { return delay(percentile(x.run.delays, 1)) }, nil)
	row(fmt.Sprintf("restart: of %s created while stopped, delivered / lost / repeated", num(s.down)), func(x *result) string {
		return fmt.Sprintf("%s / %s / %s", num(x.down.delivered), num(x.down.lost), num(x.down.repeated))
	}, nil)
	row("restart: earlier records delivered again", func(x *result) string { return num(x.repeatedRest) }, nil)
	row("records matched by", func(x *result) string { return x.id.String() }, nil)
	row("graceful stop (SIGTERM)", func(x *result) string {
		if x.stopErr != nil {
			return x.stopErr.Error()
		}
		return "exit 0"
	}, nil)
	var unexpected []string
	for _, x := range r.results {
		if n := x.run.unexpected + x.down.unexpected; n > 0 {
			unexpected = append(unexpected, fmt.Sprintf("%s: %d", x.variant, n))
		}
	}
	if len(unexpected) > 0 {
		fmt.Fprintf(w, "\nRecords of benchmark Events that match no created Event (another resourceVersion): %s.\n", strings.Join(unexpected, ", "))
	}
	if r.baseline != nil {
		fmt.Fprintf(w, "\nFor scale: creating the same %s Events with no collector running cost kube-apiserver %s of CPU over %s (%s/s).\n",
			num(s.fresh), secs(r.baseline.apiCPU), secs(r.baseline.took), num(int(r.baseline.rate+0.5)))
	}
	r.writeTargets(w, ours, p)
}

// writeTargets prints issue 10's targets for watch mode next to what each of
// ours measured against the peer in this run.
func (r *report) writeTargets(w *strings.Builder, ours []*result, p *result) {
	fmt.Fprintf(w, "\nTargets for watch mode (issue 10), as ratios against the peer in this run:\n\n")
	header := []string{"target"}
	for _, o := range ours {
		header = append(header, variantTitle(o.variant, r.s))
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	target := func(name string, f func(o *result) (string, bool)) {
		cells := []string{name}
		for _, o := range ours {
			v, ok := f(o)
			mark := "missed"
			if ok {
				mark = "met"
			}
			cells = append(cells, v+" ("+mark+")")
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	ratioTarget := func(name string, limit float64, f func(*result) float64) {
		if p == nil {
			fmt.Fprintf(w, "| %s |%s\n", name, strings.Repeat(" no peer in this run |", len(ours)))
			return
		}
		target(name, func(o *result) (string, bool) {
			if f(p) == 0 {
				return "n/a (peer: 0)", false
			}
			return ratio(f(o), f(p)), f(o)/f(p) <= limit
		})
	}
	ratioTarget("peak RSS ≤ 1/4 of the peer's", 0.25, func(x *result) float64 { return float64(x.peakRSS) })
	ratioTarget("collector CPU per 10,000 Events ≤ 1/3 of the peer's (whole window)", 1.0/3,
		func(x *result) float64 { return (x.colCPUStart + x.colCPURun).Seconds() / float64(max(1, x.run.want)) })
	ratioTarget("kube-apiserver CPU ≤ the peer's (whole window)", 1,
		func(x *result) float64 { return (x.apiCPUStart + x.apiCPURun).Seconds() })
	target(fmt.Sprintf("p99 creation to export ≤ 250 ms at %s/s", num(int(r.s.rate))), func(o *result) (string, bool) {
		p99 := percentile(o.run.delays, 0.99)
		return delay(p99), p99 <= 250*time.Millisecond && o.run.lost == 0
	})
	target("0 lost and 0 repeated (new Events, and those created while stopped)", func(o *result) (string, bool) {
		lost, rep := o.run.lost+o.down.lost, o.run.repeated+o.down.repeated+o.repeatedRest
		return fmt.Sprintf("%d lost, %d repeated", lost, rep), lost == 0 && rep == 0
	})
	if p != nil {
		fmt.Fprintf(w, "\nThe peer lost %s of the %s Events created while it was stopped.\n", num(p.down.lost), num(p.down.want))
	}
}

// ratio prints a/b with about three significant digits.
func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	switch q := a / b; {
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
