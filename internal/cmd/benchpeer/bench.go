package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
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
	cp, err := kubetest.Start(ctx, kubetest.Options{BinDir: s.kubeBin, Dir: filepath.Join(work, "cluster")})
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
	variant string
	id      identity

	ready       time.Duration // collector start to its first marker delivered
	createTook  time.Duration // first to last paced creation
	window      time.Duration // collector start to the last paced Event delivered (seen by the bench)
	colCPUStart time.Duration // collector CPU, start to ready
	colCPURun   time.Duration // collector CPU, ready to the last paced Event delivered
	apiCPUStart time.Duration
	apiCPURun   time.Duration
	// gets are kube-apiserver's GETs of Pods and ReplicaSets, start to the
	// last paced Event delivered: the owners variant's lookups.
	gets    map[string]int
	peakRSS int64 // bytes, VmHWM before the graceful stop

	run delivery // the paced Events

	stopErr      error    // the graceful stop's exit status
	down         delivery // the Events created while it was stopped
	downWindow   time.Duration
	repeatedRest int // records of earlier Events delivered again after the restart
}

// runVariant measures variant v; see the package comment.
func (b *bench) runVariant(ctx context.Context, v string) (result, error) {
	res := result{variant: v, id: identity{withRV: v != variantPeer}}
	dir := filepath.Join(b.work, v)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	sink := otlpsink.New(func(otlpsink.Record) bool { return true })
	defer sink.Close()
	cfg, err := writeConfig(dir, v, b.s, sink.Endpoint())
	if err != nil {
		return res, fmt.Errorf("write config: %w", err)
	}
	logPath := filepath.Join(dir, "collector.log")
	env := "KUBECONFIG=" + b.cp.Kubeconfig()

	// Start, and wait for the initial sync.
	api0, err := b.apiServerCPU()
	if err != nil {
		return res, err
	}
	gets0, err := b.lookupRequests(ctx)
	if err != nil {
		return res, err
	}
	b.logger.Printf("%s: starting %s", v, filepath.Base(binaryOf(v, b.s)))
	c, err := startCollector(binaryOf(v, b.s), cfg, logPath, env)
	if err != nil {
		return res, err
	}
	defer c.Kill()
	readyAt, err := b.waitReady(ctx, c, sink, 0, v+"-marker-a")
	if err != nil {
		return res, err
	}
	res.ready = readyAt.Sub(c.started)
	colReady, err := cpuTime(c.PID())
	if err != nil {
		return res, err
	}
	apiReady, err := b.apiServerCPU()
	if err != nil {
		return res, err
	}
	res.colCPUStart, res.apiCPUStart = colReady, apiReady-api0
	b.logger.Printf("%s: delivering new Events %s after start; creating %d Events at %.0f/s", v, res.ready.Round(100*time.Millisecond), b.s.fresh, b.s.rate)

	// The paced Events.
	runPrefix := v + "-run"
	arrived := make(chan arrival, 1)
	waitCtx, stopWait := context.WithCancel(ctx)
	defer stopWait()
	createdAll := make(chan []created, 1)
	quiet := max(3*b.s.interval, 30*time.Second)
	go func() { arrived <- waitArrivals(waitCtx, sink, createdAll, runPrefix, res.id, quiet) }()
	runs, took, err := createEvents(ctx, b.client, creation{prefix: runPrefix, phase: phaseRun, n: b.s.fresh, workers: b.s.workers, rate: b.s.rate, pods: b.pods})
	if err != nil {
		return res, err
	}
	res.createTook = took
	createdAll <- runs
	a := <-arrived
	if a.err != nil {
		return res, a.err
	}
	colEnd, err := cpuTime(c.PID())
	if err != nil {
		return res, err
	}
	apiEnd, err := b.apiServerCPU()
	if err != nil {
		return res, err
	}
	gets1, err := b.lookupRequests(ctx)
	if err != nil {
		return res, err
	}
	res.gets = map[string]int{}
	for r, n := range gets1 {
		res.gets[r] = n - gets0[r]
	}
	// The window ends when the bench saw the last paced Event (within 100 ms
	// of its arrival), or gave up waiting.
	res.window = time.Since(c.started)
	res.colCPURun, res.apiCPURun = colEnd-colReady, apiEnd-apiReady
	if !a.all {
		b.logger.Printf("%s: not every Event arrived; gave up waiting %s after the last arrival", v, a.quiet)
	}
	time.Sleep(settleTime)
	if res.peakRSS, err = peakRSS(c.PID()); err != nil {
		return res, err
	}
	res.run = tallyDelivery(sink.Records(), runs, runPrefix, res.id)
	b.logger.Printf("%s: %d of %d delivered, %d repeated; stopping it (SIGTERM)", v, res.run.delivered, res.run.want, res.run.repeated)

	// Restart: Events created while it is down.
	res.stopErr = c.Stop(stopTimeout)
	downPrefix := v + "-down"
	downs, _, err := createEvents(ctx, b.client, creation{prefix: downPrefix, phase: phaseDown, n: b.s.down, workers: b.s.workers, pods: b.pods})
	if err != nil {
		return res, err
	}
	restart := time.Now()
	offset := len(c.Output())
	b.logger.Printf("%s: created %d Events while it was stopped; starting it again", v, b.s.down)
	c2, err := startCollector(binaryOf(v, b.s), cfg, logPath, env)
	if err != nil {
		return res, err
	}
	defer c2.Kill()
	if _, err := b.waitReady(ctx, c2, sink, offset, v+"-marker-b"); err != nil {
		return res, err
	}
	time.Sleep(settleTime)
	recs := sink.Records()
	res.down = tallyDelivery(recs, downs, downPrefix, res.id)
	res.downWindow = time.Since(restart)
	res.repeatedRest = countNamed(recs, runPrefix, restart) + countNamed(recs, v+"-marker-a", restart)
	b.logger.Printf("%s: after the restart %d of %d delivered, %d repeated; %d earlier records again", v, res.down.delivered, res.down.want, res.down.repeated, res.repeatedRest)
	if err := c2.Stop(stopTimeout); err != nil {
		b.logger.Printf("%s: second stop: %v", v, err)
	}
	return res, b.cleanUp(ctx)
}

// waitReady waits until the collector logs that it is ready (after offset
// bytes of its log), then creates marker Events named prefix-i once a second
// until one of them is delivered, and returns when that happened.
func (b *bench) waitReady(ctx context.Context, c *collector, sink *otlpsink.Sink, offset int, prefix string) (time.Time, error) {
	if err := c.waitOutput(ctx, "Everything is ready", offset, readyTimeout); err != nil {
		return time.Time{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	markErr := make(chan error, 1)
	go func() { markErr <- marker(ctx, b.client, prefix, b.pods, markerPeriod) }()
	defer func() {
		cancel()
		<-markErr //nolint:errcheck // the marker goroutine's error matters only when it ends the wait below, which reports it
	}()
	for {
		for _, r := range sink.Records() {
			if strings.HasPrefix(r.Str(attrEventName), prefix+"-") {
				return r.Received, nil
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

// arrival is the end of the wait for the paced Events.
type arrival struct {
	at    time.Time     // when the last of them arrived (or the wait gave up)
	all   bool          // every one arrived
	quiet time.Duration // with all false: how long nothing new had arrived
	err   error
}

// waitArrivals waits until every Event sent on want (once all are created)
// has arrived at the sink. When some never do, it gives up once nothing new
// has arrived for quietLimit, or after arrivalTimeout.
func waitArrivals(ctx context.Context, sink *otlpsink.Sink, want <-chan []created, prefix string, id identity, quietLimit time.Duration) arrival {
	ctx, cancel := context.WithTimeout(ctx, arrivalTimeout)
	defer cancel()
	seen := map[string]bool{}
	var (
		wanted   map[string]bool
		last     time.Time
		scanned  int
		lastNews = time.Now()
	)
	for {
		recs := sink.Records()
		for _, r := range recs[scanned:] {
			if !strings.HasPrefix(r.Str(attrEventName), prefix+"-") {
				continue
			}
			k := id.ofRecord(r)
			if !seen[k] {
				seen[k] = true
				lastNews = time.Now()
				if r.Received.After(last) {
					last = r.Received
				}
			}
		}
		scanned = len(recs)
		if wanted != nil {
			got := 0
			for k := range wanted {
				if seen[k] {
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
			return arrival{at: last, err: fmt.Errorf("wait for the paced events: %w", ctx.Err())}
		case <-time.After(100 * time.Millisecond):
		}
	}
}
