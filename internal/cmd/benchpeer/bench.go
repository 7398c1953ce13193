package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// Bounds on waits. None is a performance limit: each only stops a broken run
// from hanging.
const (
	readyTimeout   = 10 * time.Minute // collector start to its first marker delivered
	stopTimeout    = 30 * time.Second // SIGTERM to exit
	arrivalTimeout = 15 * time.Minute // the paced Events, from their first creation
	// markerPeriod is how often a marker Event is created while waiting for
	// a collector to deliver one.
	markerPeriod = time.Second
	// settleTime is waited after the last expected record arrived, so that
	// copies arriving late are counted.
	settleTime = 5 * time.Second
	// pauseBetween lets the API server quiet down between variants.
	pauseBetween = 5 * time.Second
)

// bench is one control plane with the stored Events, on which the variants
// run one after the other.
type bench struct {
	logger    *log.Logger
	s         settings
	work      string
	cp        *kubetest.ControlPlane
	client    kubernetes.Interface // without client-side rate limits
	storeTime time.Duration
	// pods are the Pods the Events are about (-pods); none: each Event is
	// about a Pod of its own that does not exist.
	pods []corev1.ObjectReference
}

func newBench(ctx context.Context, logger *log.Logger, s settings, work string) (*bench, error) {
	logger.Printf("starting etcd and kube-apiserver from %s", s.kubeBin)
	cp, err := kubetest.Start(ctx, kubetest.Options{
		BinDir: s.kubeBin, Dir: filepath.Join(work, "cluster"), EtcdCompactionInterval: s.compaction,
	})
	if err != nil {
		return nil, err
	}
	cfg := cp.RESTConfig()
	cfg.QPS, cfg.Burst = -1, 0
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("create client: %w", err), cp.Stop())
	}
	return &bench{logger: logger, s: s, work: work, cp: cp, client: client}, nil
}

func (b *bench) close() error { return b.cp.Stop() }

func (b *bench) apiServerCPU() (time.Duration, error) {
	pid := b.cp.PID(kubetest.KubeAPIServer)
	if pid == 0 {
		return 0, errors.New("kube-apiserver is not running")
	}
	return cpuTime(pid)
}

// storeEvents creates the namespace, the Pods (-pods) and the stored Events.
func (b *bench) storeEvents(ctx context.Context) error {
	_, err := b.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create namespace %s: %w", benchNamespace, err)
	}
	if err = b.createPods(ctx); err != nil {
		return err
	}
	b.logger.Printf("creating %d stored Events in namespace %s with %d parallel clients", b.s.stored, benchNamespace, b.s.workers)
	_, took, err := createEvents(ctx, b.client, creation{prefix: "stored", phase: phaseStored, n: b.s.stored, workers: b.s.workers, pods: b.pods})
	if err != nil {
		return fmt.Errorf("store events: %w", err)
	}
	b.storeTime = took
	b.logger.Printf("stored %d Events in %s (%.0f/s)", b.s.stored, took.Round(100*time.Millisecond), float64(b.s.stored)/took.Seconds())
	return nil
}

// baseline is kube-apiserver's CPU time for the paced creations alone.
type baseline struct {
	apiCPU time.Duration
	took   time.Duration
	rate   float64
}

// runBaseline creates the paced Events with no collector running.
func (b *bench) runBaseline(ctx context.Context) (baseline, error) {
	b.logger.Printf("baseline: creating %d Events at %.0f/s with no collector running", b.s.fresh, b.s.rate)
	api0, err := b.apiServerCPU()
	if err != nil {
		return baseline{}, err
	}
	_, took, err := createEvents(ctx, b.client, creation{prefix: "baseline", phase: phaseBaseline, n: b.s.fresh, workers: b.s.workers, rate: b.s.rate, pods: b.pods})
	if err != nil {
		return baseline{}, err
	}
	api1, err := b.apiServerCPU()
	if err != nil {
		return baseline{}, err
	}
	bl := baseline{apiCPU: api1 - api0, took: took, rate: float64(b.s.fresh) / took.Seconds()}
	b.logger.Printf("baseline: kube-apiserver used %s of CPU over %s", bl.apiCPU, took.Round(100*time.Millisecond))
	return bl, b.cleanUp(ctx)
}

func (b *bench) cleanUp(ctx context.Context) error {
	if err := deleteCreated(ctx, b.client); err != nil {
		return err
	}
	select {
	case <-time.After(pauseBetween):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// result is what one variant measured.
type result struct {
	v  variant
	id identity

	startup startup

	createTook  time.Duration // first to last paced creation
	window      time.Duration // collector start to the last paced Event delivered (seen by the bench)
	colCPUStart time.Duration // collector CPU, start to ready
	colCPURun   time.Duration // collector CPU, ready to the last paced Event delivered
	apiCPUStart time.Duration
	apiCPURun   time.Duration
	peakRSS     int64 // bytes, VmHWM after the paced Events
	// gets are kube-apiserver's GETs of Pods and ReplicaSets, from the start
	// to the last paced Event delivered: the owners variant's lookups.
	gets map[string]float64

	run delivery // the paced Events

	restarts   []restart
	unreadable int // records the bench could not match to an Event
}

// startup is what a collector cost in its first s.startup (a minute by
// default) with the stored Events there.
type startup struct {
	ready time.Duration // start to its first marker delivered
	// CPU time from the start to the first marker delivered: the initial
	// sync.
	colCPUReady, apiCPUReady time.Duration

	window  time.Duration // start to the reading: s.startup, or ready when later
	apiCPU  time.Duration
	api     apiTraffic
	colCPU  time.Duration
	peakRSS int64
}

// variantRun is one variant's collector, across its restarts.
type variantRun struct {
	v       variant
	cfg     string
	logPath string
	env     string
	arr     *arrivals
	c       *collector
	starts  int // processes started, which numbers the markers
}

// start starts the variant's collector and waits until it delivers a marker
// Event; it returns when that arrived.
func (b *bench) start(ctx context.Context, vr *variantRun) (time.Time, error) {
	offset := 0
	if vr.c != nil {
		offset = len(vr.c.Output())
	}
	c, err := startCollector(vr.v.binary(b.s), vr.cfg, vr.logPath, vr.env)
	if err != nil {
		return time.Time{}, err
	}
	vr.c = c
	vr.starts++
	return b.waitReady(ctx, c, vr.arr, offset, vr.markerPrefix())
}

func (vr *variantRun) markerPrefix() string { return vr.v.name + "-marker-" + strconv.Itoa(vr.starts) }

// runVariant measures variant v; see the package comment.
func (b *bench) runVariant(ctx context.Context, v variant) (result, error) {
	res := result{v: v, id: identityOf(v.read)}
	dir := filepath.Join(b.work, v.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	vr := &variantRun{v: v, logPath: filepath.Join(dir, "collector.log"), env: "KUBECONFIG=" + b.cp.Kubeconfig(), arr: newArrivals(v.read)}
	sink := otlpsink.New(vr.arr.keep)
	defer sink.Close()
	var err error
	if vr.cfg, err = writeConfig(dir, v, b.s, sink.Endpoint()); err != nil {
		return res, fmt.Errorf("write config: %w", err)
	}
	defer func() {
		if vr.c != nil {
			vr.c.Kill()
		}
	}()

	traffic0, err := readAPITraffic(ctx, b.client)
	if err != nil {
		return res, err
	}
	// Start with the stored Events there, and wait for the initial sync.
	b.logger.Printf("%s: starting %s", v.name, filepath.Base(v.binary(b.s)))
	if res.startup, err = b.measureStartup(ctx, vr); err != nil {
		return res, err
	}
	b.logger.Printf("%s: delivered a new Event %s after start; first %s: kube-apiserver CPU %s, %s LIST (%s), peak RSS %s",
		v.name, res.startup.ready.Round(100*time.Millisecond), res.startup.window.Round(time.Second), secs(res.startup.apiCPU),
		num(int(res.startup.api.requests["LIST"])), bytesText(res.startup.api.listBytes), mib(res.startup.peakRSS))

	if err = b.measureRun(ctx, vr, &res); err != nil {
		return res, err
	}
	traffic1, err := readAPITraffic(ctx, b.client)
	if err != nil {
		return res, err
	}
	res.gets = traffic1.sub(traffic0).gets

	for _, k := range stopKinds {
		r, err := b.measureRestart(ctx, vr, k)
		if err != nil {
			return res, fmt.Errorf("restart after %s: %w", k.what, err)
		}
		res.restarts = append(res.restarts, r)
	}
	if err := vr.c.Stop(stopTimeout); err != nil {
		b.logger.Printf("%s: last stop: %v", v.name, err)
	}
	vr.arr.mu.Lock()
	res.unreadable = vr.arr.unreadable
	vr.arr.mu.Unlock()
	return res, b.cleanUp(ctx)
}

// measureStartup starts the collector and reads what it cost in its first
// s.startup (or until it delivered its first marker, when that is later).
func (b *bench) measureStartup(ctx context.Context, vr *variantRun) (startup, error) {
	var st startup
	api0, err := b.apiServerCPU()
	if err != nil {
		return st, err
	}
	traffic0, err := readAPITraffic(ctx, b.client)
	if err != nil {
		return st, err
	}
	readyAt, err := b.start(ctx, vr)
	if err != nil {
		return st, err
	}
	st.ready = readyAt.Sub(vr.c.started)
	if st.colCPUReady, err = cpuTime(vr.c.PID()); err != nil {
		return st, err
	}
	apiReady, err := b.apiServerCPU()
	if err != nil {
		return st, err
	}
	st.apiCPUReady = apiReady - api0
	select {
	case <-time.After(time.Until(vr.c.started.Add(b.s.startup))):
	case <-ctx.Done():
		return st, ctx.Err()
	}
	st.window = time.Since(vr.c.started)
	api1, err := b.apiServerCPU()
	if err != nil {
		return st, err
	}
	traffic1, err := readAPITraffic(ctx, b.client)
	if err != nil {
		return st, err
	}
	st.apiCPU, st.api = api1-api0, traffic1.sub(traffic0)
	if st.colCPU, err = cpuTime(vr.c.PID()); err != nil {
		return st, err
	}
	if st.peakRSS, err = peakRSS(vr.c.PID()); err != nil {
		return st, err
	}
	return st, nil
}

// measureRun creates the paced Events while the collector runs and measures
// how they arrive and what that costs.
func (b *bench) measureRun(ctx context.Context, vr *variantRun, res *result) error {
	v, c := vr.v, vr.c
	colStart, err := cpuTime(c.PID())
	if err != nil {
		return err
	}
	apiStart, err := b.apiServerCPU()
	if err != nil {
		return err
	}
	// The window is the initial sync (start to the first marker) and the
	// paced Events; the rest of the startup phase is left out.
	res.colCPUStart, res.apiCPUStart = res.startup.colCPUReady, res.startup.apiCPUReady
	b.logger.Printf("%s: creating %d Events at %.0f/s", v.name, b.s.fresh, b.s.rate)

	runPrefix := v.name + "-run"
	arrived := make(chan arrival, 1)
	waitCtx, stopWait := context.WithCancel(ctx)
	defer stopWait()
	createdAll := make(chan []created, 1)
	quiet := max(3*b.s.interval, 30*time.Second)
	runStart := time.Now()
	go func() { arrived <- waitArrivals(waitCtx, vr.arr, createdAll, runPrefix, res.id, quiet) }()
	runs, took, err := createEvents(ctx, b.client, creation{prefix: runPrefix, phase: phaseRun, n: b.s.fresh, workers: b.s.workers, rate: b.s.rate, pods: b.pods})
	if err != nil {
		return err
	}
	res.createTook = took
	createdAll <- runs
	a := <-arrived
	if a.err != nil {
		return a.err
	}
	colEnd, err := cpuTime(c.PID())
	if err != nil {
		return err
	}
	apiEnd, err := b.apiServerCPU()
	if err != nil {
		return err
	}
	// The window: to the ready marker, then from the first paced creation
	// to when the bench saw the last paced Event (within 100 ms of its
	// arrival), or gave up waiting.
	res.window = res.startup.ready + time.Since(runStart)
	res.colCPURun, res.apiCPURun = colEnd-colStart, apiEnd-apiStart
	if !a.all {
		b.logger.Printf("%s: not every Event arrived; gave up waiting %s after the last arrival", v.name, a.quiet)
	}
	time.Sleep(settleTime)
	if res.peakRSS, err = peakRSS(c.PID()); err != nil {
		return err
	}
	res.run = tallyDelivery(vr.arr.all(), runs, runPrefix, res.id)
	b.logger.Printf("%s: %d of %d delivered, %d repeated", v.name, res.run.delivered, res.run.want, res.run.repeated)
	return nil
}

// waitReady waits until the collector logs that it is ready (after offset
// bytes of its log), then creates marker Events named prefix-i once a second
// until one of them is delivered, and returns when that happened.
func (b *bench) waitReady(ctx context.Context, c *collector, arr *arrivals, offset int, prefix string) (time.Time, error) {
	if err := c.waitOutput(ctx, "Everything is ready", offset, readyTimeout); err != nil {
		return time.Time{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	// The marker goroutine's end, once: the wait below may have read it.
	markErr := make(chan error, 1)
	markDone := make(chan struct{})
	go func() {
		defer close(markDone)
		markErr <- marker(ctx, b.client, prefix, b.pods, markerPeriod)
	}()
	defer func() {
		cancel()
		<-markDone
	}()
	scanned := 0
	for {
		recs := arr.since(scanned)
		scanned += len(recs)
		for _, r := range recs {
			if r.named(prefix) {
				return r.at, nil
			}
		}
		if done, err := c.Exited(); done {
			return time.Time{}, fmt.Errorf("collector exited (%w) before delivering a marker Event:\n%s", err, testbin.LastLines(c.Output(), 30))
		}
		select {
		case err := <-markErr:
			if err == nil {
				err = ctx.Err()
			}
			return time.Time{}, fmt.Errorf("no marker Event delivered: %w:\n%s", err, testbin.LastLines(c.Output(), 30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// arrival is the end of the wait for a set of Events.
type arrival struct {
	at    time.Time     // when the last of them arrived (or the wait gave up)
	all   bool          // every one arrived
	quiet time.Duration // with all false: how long nothing new had arrived
	err   error
}

// waitArrivals waits until every Event sent on want (once all are created)
// has arrived. When some never do, it gives up once nothing new has arrived
// for quietLimit, or after arrivalTimeout.
func waitArrivals(ctx context.Context, arr *arrivals, want <-chan []created, prefix string, id identity, quietLimit time.Duration) arrival {
	ctx, cancel := context.WithTimeout(ctx, arrivalTimeout)
	defer cancel()
	seenKeys := map[string]bool{}
	var (
		wanted   map[string]bool
		last     time.Time
		scanned  int
		lastNews = time.Now()
	)
	for {
		recs := arr.since(scanned)
		scanned += len(recs)
		for _, r := range recs {
			if !r.named(prefix) {
				continue
			}
			k := id.ofSeen(r)
			if !seenKeys[k] {
				seenKeys[k] = true
				lastNews = time.Now()
				if r.at.After(last) {
					last = r.at
				}
			}
		}
		if wanted != nil {
			got := 0
			for k := range wanted {
				if seenKeys[k] {
					got++
				}
			}
			if got == len(wanted) {
				return arrival{at: last, all: true}
			}
			if q := time.Since(lastNews); q > quietLimit {
				return arrival{at: last, quiet: q}
			}
		}
		select {
		case w := <-want:
			wanted = make(map[string]bool, len(w))
			for _, e := range w {
				wanted[id.ofEvent(e)] = true
			}
			lastNews = time.Now()
		case <-ctx.Done():
			return arrival{at: last, err: fmt.Errorf("wait for the events named %s-*: %w", prefix, ctx.Err())}
		case <-time.After(100 * time.Millisecond):
		}
	}
}
