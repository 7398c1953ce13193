package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// stopKind is one way a collector is stopped and started again while Events
// are created.
type stopKind struct {
	name string // in the names of the Events: <variant>-<name>-before-<i>
	what string // for the report
	// kill stops with SIGKILL (as `kill -9`, an OOM kill or a lost node
	// would), else SIGTERM.
	kill bool
	// compact, while the collector is down, compacts etcd's history up to
	// the current revision (as kube-apiserver's compactor does every
	// --etcd-compaction-interval, 5 minutes by default) and restarts
	// kube-apiserver, so that its watch cache no longer holds the revision
	// of the stop either: the collector's resume point is gone when it
	// starts again, as after a stop of several minutes.
	compact bool
}

// stopKinds are measured in this order, each on the process the one before
// started.
var stopKinds = []stopKind{
	{name: "term", what: "SIGTERM"},
	{name: "kill", what: "kill -9", kill: true},
	{name: "gone", what: "SIGTERM across an etcd compaction", compact: true},
}

// restart is what one stop and start measured.
type restart struct {
	kind    stopKind
	stopErr error         // the SIGTERM's exit status
	down    time.Duration // from the stop to the new process delivering a marker
	// The Events created while it ran just before the stop, while it was
	// stopped, and after it delivered a marker again.
	before, during, after delivery
	// earlier counts records of Events from earlier phases delivered again
	// by the new process.
	earlier int
}

func (r restart) all() delivery { return r.before.add(r.during).add(r.after) }

// measureRestart creates s.edge Events at s.edgeRate while the collector
// runs, stops it as k says right after the last of them, creates s.down
// Events while it is down, starts it again, creates s.edge more once it
// delivers a marker, and counts what arrived of the three sets.
func (b *bench) measureRestart(ctx context.Context, vr *variantRun, k stopKind) (restart, error) {
	r := restart{kind: k}
	v := vr.v
	id := identityOf(v.read)
	prefix := v.name + "-" + k.name
	names := struct{ before, during, after string }{prefix + "-before", prefix + "-down", prefix + "-after"}
	edge := func(name string) creation {
		return creation{prefix: name, phase: phaseRestart, n: b.s.edge, workers: b.s.workers, rate: b.s.edgeRate, pods: b.pods}
	}

	b.logger.Printf("%s: creating %d Events at %.0f/s, then %s", v.name, b.s.edge, b.s.edgeRate, k.what)
	before, _, err := createEvents(ctx, b.client, edge(names.before))
	if err != nil {
		return r, err
	}
	stoppedAt := time.Now()
	if k.kill {
		vr.c.Kill()
	} else {
		r.stopErr = vr.c.Stop(stopTimeout)
	}
	var stopRV string
	if k.compact {
		if stopRV, err = b.revision(ctx); err != nil {
			return r, fmt.Errorf("read the revision at the stop: %w", err)
		}
	}
	during, _, err := createEvents(ctx, b.client, creation{prefix: names.during, phase: phaseRestart, n: b.s.down, workers: b.s.workers, pods: b.pods})
	if err != nil {
		return r, err
	}
	b.logger.Printf("%s: created %d Events while it was stopped", v.name, b.s.down)
	if k.compact {
		if err = b.compact(ctx, stopRV); err != nil {
			return r, err
		}
		b.logger.Printf("%s: etcd compacted past revision %s; restarting kube-apiserver", v.name, stopRV)
		if err = b.cp.StopAPIServer(); err != nil {
			return r, err
		}
		if err = b.cp.StartAPIServer(ctx); err != nil {
			return r, err
		}
	}

	b.logger.Printf("%s: starting it again", v.name)
	restartAt := time.Now()
	readyAt, err := b.start(ctx, vr)
	if err != nil {
		return r, err
	}
	r.down = readyAt.Sub(stoppedAt)

	// The Events after the restart; then wait for all three sets, giving up
	// once the ones after have arrived and nothing else has for a while.
	after, _, err := createEvents(ctx, b.client, edge(names.after))
	if err != nil {
		return r, err
	}
	quiet := max(b.s.interval+settleTime, 10*time.Second)
	if err := b.waitRestartArrivals(ctx, vr.arr, id, names.after, after, append(append(before, during...), after...), prefix, quiet); err != nil {
		return r, err
	}
	time.Sleep(settleTime)

	recs := vr.arr.all()
	r.before = tallyDelivery(recs, before, names.before, id)
	r.during = tallyDelivery(recs, during, names.during, id)
	r.after = tallyDelivery(recs, after, names.after, id)
	r.earlier = countEarlier(recs, v.name, restartAt, prefix, vr.markerPrefix())
	all := r.all()
	b.logger.Printf("%s: %s: %d of %d delivered (lost %d before, %d while stopped, %d after), %d repeated; %d earlier records again",
		v.name, k.what, all.delivered, all.want, r.before.lost, r.during.lost, r.after.lost, all.repeated, r.earlier)
	return r, nil
}

// waitRestartArrivals waits until every Event of all (named prefix-...)
// arrived, or until those of after (named afterPrefix-...) did and nothing
// new has arrived for quiet.
func (b *bench) waitRestartArrivals(ctx context.Context, arr *arrivals, id identity, afterPrefix string, after, all []created, prefix string, quiet time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, arrivalTimeout)
	defer cancel()
	wantAll, wantAfter := map[string]bool{}, map[string]bool{}
	for _, e := range all {
		wantAll[id.ofEvent(e)] = true
	}
	for _, e := range after {
		wantAfter[id.ofEvent(e)] = true
	}
	got, gotAfter := map[string]bool{}, map[string]bool{}
	scanned, lastNews := 0, time.Now()
	for {
		recs := arr.since(scanned)
		scanned += len(recs)
		for _, r := range recs {
			if !r.named(prefix) {
				continue
			}
			k := id.ofSeen(r)
			if wantAll[k] && !got[k] {
				got[k] = true
				lastNews = time.Now()
			}
			if wantAfter[k] && r.named(afterPrefix) {
				gotAfter[k] = true
			}
		}
		if len(got) == len(wantAll) {
			return nil
		}
		if len(gotAfter) == len(wantAfter) && time.Since(lastNews) > quiet {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the events named %s-*: %d of %d arrived, %d of the %d after the restart: %w",
				prefix, len(got), len(wantAll), len(gotAfter), len(wantAfter), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// revision is etcd's current revision, as a list reports it.
func (b *bench) revision(ctx context.Context) (string, error) {
	list, err := b.client.CoreV1().Events(benchNamespace).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return "", err
	}
	return list.ResourceVersion, nil
}

// compact compacts etcd's history up to its current revision through
// etcd's JSON gateway (POST /v3/kv/compaction, what kube-apiserver's
// compactor asks over gRPC), then checks that a list at revision old is
// refused with 410 Gone.
func (b *bench) compact(ctx context.Context, old string) error {
	rev, err := b.revision(ctx)
	if err != nil {
		return fmt.Errorf("read the revision to compact to: %w", err)
	}
	body := `{"revision":"` + rev + `","physical":true}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.cp.EtcdURL()+"/v3/kv/compaction", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("compact etcd to revision %s: %w", rev, err)
	}
	answer, err := io.ReadAll(resp.Body)
	if err = errors.Join(err, resp.Body.Close()); err != nil {
		return fmt.Errorf("compact etcd to revision %s: %w", rev, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("compact etcd to revision %s: %s: %s", rev, resp.Status, answer)
	}
	_, err = b.client.CoreV1().Events(benchNamespace).List(ctx, metav1.ListOptions{
		ResourceVersion: old, ResourceVersionMatch: metav1.ResourceVersionMatchExact, Limit: 1,
	})
	switch {
	case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
		return nil
	case err != nil:
		return fmt.Errorf("compacted etcd to revision %s, then a list at revision %s: %w (want 410 Gone)", rev, old, err)
	default:
		return fmt.Errorf("compacted etcd to revision %s, but a list at revision %s still succeeds", rev, old)
	}
}
