package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
)

const (
	transport = "http"
	format    = "kubernetes_event"
	// minRetry is the first wait after a failed poll; it doubles up to the
	// configured interval.
	minRetry = time.Second
	// deliveryGrace is how long Shutdown lets a page being delivered finish.
	// An exporter retrying a backend that is down would otherwise hold the
	// shutdown until its retries give up; a page cut short is not counted
	// as delivered, so it comes again after the restart.
	deliveryGrace = 5 * time.Second
)

var _ receiver.Logs = (*eventsReceiver)(nil)

type eventsReceiver struct {
	cfg      *Config
	settings receiver.Settings
	next     consumer.Logs
	obs      *receiverhelper.ObsReport
	tel      *telemetry
	scopes   []scope
	// identity names this replica in the Lease.
	identity string
	// newClient builds the API client in Start; tests replace it.
	newClient func() (kubernetes.Interface, error)
	// now is the clock for ObservedTimestamp; tests replace it.
	now func() time.Time
	// deliveryGrace is the constant of that name; tests shorten it.
	deliveryGrace time.Duration

	// store and ckpt keep the resume point; nil when none is configured.
	store positionStore
	ckpt  *checkpointer
	// positions is how far each scope has been delivered; nil until it is
	// loaded from the store. Only the goroutine that polls touches it.
	positions map[string]*cursor

	// cancel stops polling: no list or page starts after it.
	cancel context.CancelFunc
	// delivering is the context of the pages handed to the next consumer.
	// Shutdown does not cancel it at once: a page being delivered may finish
	// (within Shutdown's own context), so that the resume point written on
	// shutdown covers it and a restart repeats nothing.
	delivering       context.Context
	cancelDelivering context.CancelFunc
	wg               sync.WaitGroup
	// shutdownCtx is the context Shutdown was called with, for the flush.
	shutdownCtx atomic.Pointer[context.Context]
}

func newReceiver(set receiver.Settings, cfg *Config, next consumer.Logs) (*eventsReceiver, error) {
	obs, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID:             set.ID,
		Transport:              transport,
		ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, fmt.Errorf("create receiver telemetry: %w", err)
	}
	tel, err := newTelemetry(set.TelemetrySettings, set.ID)
	if err != nil {
		return nil, fmt.Errorf("create receiver metrics: %w", err)
	}
	return &eventsReceiver{
		cfg:       cfg,
		settings:  set,
		next:      next,
		obs:       obs,
		tel:       tel,
		scopes:    scopesOf(cfg),
		identity:  newIdentity(),
		newClient: func() (kubernetes.Interface, error) { return newClient(cfg, userAgent(set)) },
		now:       time.Now,

		deliveryGrace: deliveryGrace,
	}, nil
}

// Start builds the API client, resolves the storage extension and starts
// polling (or campaigning for the Lease). It does not wait for the API
// server: an unreachable server is retried by the poll loop, which also
// reads the resume point before its first poll.
func (r *eventsReceiver) Start(ctx context.Context, host component.Host) error {
	client, err := r.newClient()
	if err != nil {
		return err
	}
	var elect *leaderelection.LeaderElectionConfig
	if le := r.cfg.LeaderElection.Get(); le != nil {
		if elect, err = r.electionConfig(client, le); err != nil {
			return err
		}
	}
	switch checkpoint := r.cfg.Checkpoint.Get(); {
	case r.cfg.Storage != nil:
		st, err := openStorage(ctx, host, *r.cfg.Storage, r.settings.ID)
		if err != nil {
			return err
		}
		r.store = st
		if elect != nil && r.cfg.Storage.Type().String() == "file_storage" {
			r.settings.Logger.Warn("leader_election with file_storage: each replica reads its own file, so a new leader repeats what the old one delivered; use checkpoint to share the resume point",
				zap.Stringer("storage", r.cfg.Storage))
		}
	case checkpoint != nil:
		r.store = &configMapStore{client: client, namespace: checkpoint.Namespace, name: checkpoint.Name}
	}
	if r.store != nil {
		r.ckpt = newCheckpointer(r.store, r.cfg, r.scopes, r.settings.Logger, r.tel)
	}

	pollCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.delivering, r.cancelDelivering = context.WithCancel(context.Background())
	l := &lister{client: client, pageSize: r.cfg.PageSize, logger: r.settings.Logger, tel: r.tel, afterPage: r.checkpoint}
	fields := []zap.Field{
		zap.Strings("namespaces", r.cfg.Namespaces), zap.Strings("exclude_namespaces", r.cfg.ExcludeNamespaces),
		zap.Duration("interval", r.cfg.Interval), zap.String("start_at", string(r.cfg.StartAt)),
	}
	if r.store != nil {
		fields = append(fields, zap.Stringer("checkpoint", r.store), zap.Duration("checkpoint_interval", r.cfg.CheckpointInterval))
	}
	if elect != nil {
		le := r.cfg.LeaderElection.Get()
		r.settings.Logger.Info("Campaigning for leadership; only the leader polls Kubernetes events",
			append(fields, zap.String("identity", r.identity), zap.String("lease_namespace", le.LeaseNamespace), zap.String("lease_name", le.LeaseName))...)
		r.tel.recordLeader(ctx, false)
		r.wg.Go(func() { r.campaign(pollCtx, l, *elect) })
		return nil
	}
	r.settings.Logger.Info("Polling Kubernetes events", fields...)
	r.wg.Go(func() {
		r.run(pollCtx, r.delivering, l)
		r.flush()
	})
	return nil
}

// Shutdown stops polling, lets a page being delivered finish (for at most
// deliveryGrace, and while ctx lasts), writes the resume point with ctx and,
// as leader, only then gives up the Lease. It is safe before Start and safe
// twice.
func (r *eventsReceiver) Shutdown(ctx context.Context) error {
	r.shutdownCtx.Store(&ctx)
	if r.cancel != nil {
		r.cancel()
		stop := context.AfterFunc(ctx, r.cancelDelivering)
		grace := time.AfterFunc(r.deliveryGrace, r.cancelDelivering)
		r.wg.Wait()
		stop()
		grace.Stop()
		r.cancelDelivering()
	}
	if r.store == nil {
		return nil
	}
	store := r.store
	r.store = nil
	if err := store.close(ctx); err != nil {
		return fmt.Errorf("close %s: %w", store, err)
	}
	return nil
}

// run reads the resume point, then polls at once and every interval, and
// writes the resume point when the checkpointer's timer fires. A poll that
// fails is retried sooner, backing off from minRetry to the interval; the
// failure is logged when it starts and when it changes, and the recovery
// once.
func (r *eventsReceiver) run(ctx, delivering context.Context, l *lister) {
	polls := failureLog{
		logger:       r.settings.Logger,
		failedMsg:    "Polling Kubernetes events failed; keeping the position and retrying",
		stillMsg:     "Polling Kubernetes events still fails",
		recoveredMsg: "Polling Kubernetes events works again",
		countKey:     "failed_polls",
	}
	loads := failureLog{
		logger:       r.settings.Logger,
		failedMsg:    "Reading the checkpoint failed; retrying before the first poll",
		stillMsg:     "Reading the checkpoint still fails",
		recoveredMsg: "Reading the checkpoint works again",
		countKey:     "failed_reads",
	}
	retry := func(failures int) time.Duration { return min(r.cfg.Interval, minRetry<<min(failures-1, 16)) }
	var due <-chan time.Time
	if r.ckpt != nil {
		due = r.ckpt.timer.C
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-due:
			r.checkpoint(ctx)
			continue
		case <-timer.C:
		}
		if r.positions == nil {
			if err := r.resume(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				wait := retry(loads.failures + 1)
				loads.fail(err, wait)
				timer.Reset(wait)
				continue
			}
			loads.ok()
		}
		started := time.Now()
		err := r.poll(ctx, delivering, l)
		if ctx.Err() != nil {
			return // shutting down or no longer leader; an interrupted poll is not a failure
		}
		r.tel.recordPoll(ctx, started, err)
		r.checkpoint(ctx)
		if err == nil {
			polls.ok()
			timer.Reset(max(0, r.cfg.Interval-time.Since(started)))
			continue
		}
		wait := retry(polls.failures + 1)
		polls.fail(err, wait)
		timer.Reset(wait)
	}
}

// resume loads the positions from the store, or starts without any.
func (r *eventsReceiver) resume(ctx context.Context) error {
	if r.ckpt == nil {
		r.positions = make(map[string]*cursor)
		return nil
	}
	positions, err := r.ckpt.load(ctx)
	if err != nil {
		return err
	}
	r.positions = positions
	return nil
}

// checkpoint writes the positions if they changed and the interval allows.
func (r *eventsReceiver) checkpoint(ctx context.Context) {
	if r.ckpt != nil {
		r.ckpt.save(ctx, r.positions, false)
	}
}

// flush writes the positions on shutdown, with the context of Shutdown.
func (r *eventsReceiver) flush() {
	if r.ckpt == nil {
		return
	}
	ctx := context.Background()
	if p := r.shutdownCtx.Load(); p != nil {
		ctx = *p
	}
	r.ckpt.save(ctx, r.positions, true)
}

// failureLog logs a failure that repeats when it starts and when it changes,
// and the recovery once, so that an outage does not flood the log.
type failureLog struct {
	logger                            *zap.Logger
	failedMsg, stillMsg, recoveredMsg string
	// countKey is the log field that counts the failures.
	countKey string
	failures int
	lastErr  string
	since    time.Time
}

func (f *failureLog) fail(err error, retry time.Duration, fields ...zap.Field) {
	f.failures++
	if f.failures == 1 {
		f.since = time.Now()
	}
	fields = append(fields, zap.Error(err), zap.Int(f.countKey, f.failures))
	if msg := err.Error(); msg != f.lastErr {
		f.logger.Warn(f.failedMsg, append(fields, zap.Duration("retry_in", retry))...)
		f.lastErr = msg
		return
	}
	f.logger.Debug(f.stillMsg, fields...)
}

func (f *failureLog) ok() {
	if f.failures > 0 {
		f.logger.Info(f.recoveredMsg,
			zap.Int(f.countKey, f.failures), zap.Duration("after", time.Since(f.since).Round(time.Second)))
	}
	f.failures, f.lastErr = 0, ""
}

// poll syncs every scope. A scope that fails does not stop the others. ctx
// governs the lists; delivering, the pages handed to the next consumer.
func (r *eventsReceiver) poll(ctx, delivering context.Context, l *lister) error {
	var errs []error
	var marked []string
	for _, s := range r.scopes {
		rev, err := r.pollScope(ctx, delivering, l, s)
		if err != nil {
			errs = append(errs, r.classify(ctx, s, err))
		} else if rev != 0 {
			marked = append(marked, fmt.Sprintf("%s@%d", s.id(), rev))
		}
	}
	if len(marked) > 0 {
		r.settings.Logger.Info("start_at end: skipped the Events already stored; emitting the changes made after these revisions",
			zap.Strings("scope_revisions", marked))
	}
	return errors.Join(errs...)
}

// pollScope syncs one scope. On the first poll of a scope with start_at end
// it only learns where the stored Events end, and returns that revision.
func (r *eventsReceiver) pollScope(ctx, delivering context.Context, l *lister, s scope) (marked uint64, err error) {
	cur, ok := r.positions[s.id()]
	if !ok {
		cur = &cursor{}
		if r.cfg.StartAt == StartAtEnd {
			rev, err := l.mark(ctx, s)
			if err != nil {
				return 0, err
			}
			cur.complete(rev)
			r.positions[s.id()] = cur
			return rev, nil
		}
		r.positions[s.id()] = cur
	}
	return 0, l.sync(ctx, s, cur, func(events []corev1.Event) error { return r.deliver(delivering, events) })
}

// deliver converts a page of Events and hands it to the next consumer. A
// permanent error means the data can never be accepted: it is dropped, and
// logged, so that one bad batch cannot stop collection for good.
func (r *eventsReceiver) deliver(ctx context.Context, events []corev1.Event) error {
	logs := convertEvents(events, r.cfg.ClusterName, r.now())
	obsCtx := r.obs.StartLogsOp(ctx)
	err := r.next.ConsumeLogs(obsCtx, logs)
	r.obs.EndLogsOp(obsCtx, format, len(events), err)
	if err != nil && consumererror.IsPermanent(err) {
		r.settings.Logger.Error("The next consumer rejected events permanently; dropping them",
			zap.Int("events", len(events)), zap.Error(err))
		return nil
	}
	return err
}

// classify counts an error and, for a 403, names the RBAC rule that is missing.
func (r *eventsReceiver) classify(ctx context.Context, s scope, err error) error {
	var de errDeliver
	switch {
	case errors.As(err, &de):
		r.tel.recordError(ctx, "consume")
		return err
	case apierrors.IsForbidden(err):
		r.tel.recordError(ctx, "forbidden")
		where := "cluster-wide (ClusterRole)"
		if s.namespace != "" {
			where = fmt.Sprintf("in namespace %q (Role)", s.namespace)
		}
		return fmt.Errorf("%w; RBAC: grant verb \"list\" on resource \"events\" (apiGroups [\"\"]) %s", err, where)
	default:
		r.tel.recordError(ctx, "list")
		return err
	}
}
