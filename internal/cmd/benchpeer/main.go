// Command benchpeer runs otelcol-k8sevents (poll and watch mode) and
// collector-contrib's receivers of Kubernetes Events v0.152.0 (the peer:
// k8s_events, and k8sobjects as the Helm chart's kubernetesEvents preset
// configures it, each without and with storage) one at a time against one
// real API server holding many Events, and prints their figures side by side
// as Markdown tables for BENCHMARKS.md. `make bench-peer` builds everything
// and runs it.
//
// For each variant:
//
//  1. start the collector with the stored Events there; wait until it
//     delivers a new Event (its initial sync is done); at one minute, read
//     what it cost: kube-apiserver's CPU, LIST and WATCH requests and bytes
//     (from kube-apiserver's /metrics), the collector's CPU and peak RSS;
//
//  2. create Events at a steady rate, and record peak RSS, CPU time of the
//     collector and of kube-apiserver, what arrived (lost, repeated) and how
//     late;
//
//  3. three times, stop it while Events are created before, during and
//     after the stop, start it again, and count what arrives: SIGTERM,
//     kill -9, and SIGTERM across an etcd compaction and a kube-apiserver
//     restart (its resume point is gone).
//
//     go run ./internal/cmd/benchpeer -variants poll,events -stored 5000 -new 1000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// settings are the command-line flags.
type settings struct {
	collector  string
	peer       string
	kubeBin    string
	variants   []variant
	stored     int
	fresh      int
	pods       int
	rate       float64
	startup    time.Duration
	down       int
	edge       int
	edgeRate   float64
	compaction time.Duration
	interval   time.Duration
	workers    int
	baseline   bool
	keep       bool
	command    string
}

func main() {
	var s settings
	var variants string
	flag.StringVar(&s.collector, "collector", "_build/otelcol-k8sevents", "otelcol-k8sevents binary (make build)")
	flag.StringVar(&s.peer, "peer", ".bin/otelcol-peer", "collector with contrib's k8s_events and k8sobjects receivers "+peerVersion+" (make peer)")
	flag.StringVar(&s.kubeBin, "kube-bin", ".bin", "directory with etcd and kube-apiserver (make kube)")
	flag.StringVar(&variants, "variants", strings.Join(variantNames(), ","), "comma-separated variants to run, in order: "+strings.Join(variantNames(), ", "))
	flag.IntVar(&s.stored, "stored", 100_000, "Events stored in the namespace before the first collector starts")
	flag.IntVar(&s.fresh, "new", 10_000, "Events created, paced, while each collector runs")
	flag.IntVar(&s.pods, "pods", 2000, "Pods the Events are about, in turn (created Pending, owned by a ReplicaSet and a Deployment for every 20: what the owners variant looks up); 0: each Event is about a Pod of its own that does not exist")
	flag.Float64Var(&s.rate, "rate", 1000, "creation rate of the -new Events, per second")
	flag.DurationVar(&s.startup, "startup", time.Minute, "how long after each collector's start its startup cost is read")
	flag.IntVar(&s.down, "down", 1000, "Events created while each collector is stopped")
	flag.IntVar(&s.edge, "edge", 300, "Events created just before each stop, and again after each restart")
	flag.Float64Var(&s.edgeRate, "edge-rate", 100, "creation rate of the -edge Events, per second")
	flag.DurationVar(&s.compaction, "compaction-interval", 0, "kube-apiserver's --etcd-compaction-interval (0: its default, 5m)")
	flag.DurationVar(&s.interval, "interval", 10*time.Second, "interval of ours in poll mode")
	flag.IntVar(&s.workers, "workers", 32, "parallel clients creating Events (no client-side rate limit)")
	flag.BoolVar(&s.baseline, "baseline", true, "also measure kube-apiserver's CPU for the -new creations with no collector running")
	flag.BoolVar(&s.keep, "keep", false, "keep the work directory (collector logs, configs, control plane logs)")
	flag.StringVar(&s.command, "command", "", "the command to print in the report (default: this program's arguments)")
	flag.Parse()
	if s.command == "" {
		s.command = "go run ./internal/cmd/benchpeer " + strings.Join(os.Args[1:], " ")
	}

	logger := log.New(os.Stderr, "benchpeer: ", log.Ltime)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	if s.variants, err = parseVariants(variants); err != nil {
		logger.Fatalf("-variants: %v", err)
	}
	if err = s.resolvePaths(); err != nil {
		logger.Fatal(err)
	}
	rep, err := run(ctx, logger, s)
	if err != nil {
		logger.Print(err)
		os.Exit(1)
	}
	var out strings.Builder
	rep.write(&out)
	if _, err = os.Stdout.WriteString(out.String()); err != nil {
		logger.Fatalf("print the report: %v", err)
	}
}

// resolvePaths makes the binaries' paths absolute and checks they exist.
func (s *settings) resolvePaths() error {
	for _, p := range []*string{&s.collector, &s.peer, &s.kubeBin} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	for _, v := range s.variants {
		if _, err := os.Stat(v.binary(*s)); err != nil {
			return fmt.Errorf("variant %s: %w (make build peer)", v.name, err)
		}
	}
	return nil
}

func run(ctx context.Context, logger *log.Logger, s settings) (_ *report, err error) {
	work, err := os.MkdirTemp("", "benchpeer-")
	if err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	defer func() {
		if err != nil || s.keep {
			logger.Printf("work directory kept: %s", work)
			return
		}
		_ = os.RemoveAll(work)
	}()

	// A variant whose configuration the binary refuses (watch mode before it
	// exists, say) fails here, in seconds, not after the Events are stored.
	for _, v := range s.variants {
		if err = validate(ctx, work, s, v); err != nil {
			return nil, err
		}
	}

	b, err := newBench(ctx, logger, s, work)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, b.close()) }()

	rep := newReport(s)
	if err := b.storeEvents(ctx); err != nil {
		return nil, err
	}
	rep.storeTime = b.storeTime
	if s.baseline {
		bl, err := b.runBaseline(ctx)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		rep.baseline = &bl
	}
	for _, v := range s.variants {
		res, err := b.runVariant(ctx, v)
		if err != nil {
			return nil, fmt.Errorf("variant %s: %w", v.name, err)
		}
		rep.results = append(rep.results, res)
	}
	rep.total = time.Since(rep.started)
	return rep, nil
}
