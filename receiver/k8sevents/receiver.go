package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
)

const (
	transport = "http"
	format    = "kubernetes_event"
	// minRetry is the first wait after a failed poll; it doubles up to the
	// configured interval.
	minRetry = time.Second
)

var _ receiver.Logs = (*eventsReceiver)(nil)

type eventsReceiver struct {
	cfg      *Config
	settings receiver.Settings
	next     consumer.Logs
	obs      *receiverhelper.ObsReport
	tel      *telemetry
	// newClient builds the API client in Start; tests replace it.
	newClient func() (kubernetes.Interface, error)
	// now is the clock for ObservedTimestamp; tests replace it.
	now func() time.Time

	// positions is how far each scope has been delivered. Only the poll
	// goroutine touches it.
	positions map[string]*cursor

	cancel context.CancelFunc
	wg     sync.WaitGroup
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
	userAgent := fmt.Sprintf("%s/%s (%s)", set.BuildInfo.Command, set.BuildInfo.Version, set.ID)
	return &eventsReceiver{
		cfg:       cfg,
		settings:  set,
		next:      next,
		obs:       obs,
		tel:       tel,
		newClient: func() (kubernetes.Interface, error) { return newClient(cfg, userAgent) },
		now:       time.Now,
		positions: make(map[string]*cursor),
	}, nil
}

// Start builds the API client and starts polling. It does not wait for the
// API server: an unreachable server is retried by the poll loop.
func (r *eventsReceiver) Start(_ context.Context, _ component.Host) error {
	client, err := r.newClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	l := &lister{client: client, pageSize: r.cfg.PageSize, logger: r.settings.Logger, tel: r.tel}
	r.wg.Go(func() { r.run(ctx, l) })
	r.settings.Logger.Info("Polling Kubernetes events",
		zap.Strings("namespaces", r.cfg.Namespaces), zap.Strings("exclude_namespaces", r.cfg.ExcludeNamespaces),
		zap.Duration("interval", r.cfg.Interval), zap.String("start_at", string(r.cfg.StartAt)))
	return nil
}

// Shutdown stops polling and waits for a poll in progress to end. It is safe
// before Start and safe twice.
func (r *eventsReceiver) Shutdown(context.Context) error {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	return nil
}

// run polls at once and then every interval. A poll that fails is retried
// sooner, backing off from minRetry to the interval; the failure is logged
// when it starts and when it changes, and the recovery once.
func (r *eventsReceiver) run(ctx context.Context, l *lister) {
	var (
		failures  int
		lastErr   string
		failSince time.Time
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		started := time.Now()
		err := r.poll(ctx, l)
		if ctx.Err() != nil {
			return // shutting down; an interrupted poll is not a failure
		}
		r.tel.recordPoll(ctx, started, err)
		if err == nil {
			if failures > 0 {
				r.settings.Logger.Info("Polling Kubernetes events works again",
					zap.Int("failed_polls", failures), zap.Duration("after", time.Since(failSince).Round(time.Second)))
			}
			failures, lastErr = 0, ""
			timer.Reset(max(0, r.cfg.Interval-time.Since(started)))
			continue
		}
		failures++
		if failures == 1 {
			failSince = started
		}
		retry := min(r.cfg.Interval, minRetry<<min(failures-1, 16))
		if msg := err.Error(); msg != lastErr {
			r.settings.Logger.Warn("Polling Kubernetes events failed; keeping the position and retrying",
				zap.Error(err), zap.Duration("retry_in", retry), zap.Int("failed_polls", failures))
			lastErr = msg
		} else {
			r.settings.Logger.Debug("Polling Kubernetes events still fails", zap.Error(err), zap.Int("failed_polls", failures))
		}
		timer.Reset(retry)
	}
}

// poll syncs every scope. A scope that fails does not stop the others.
func (r *eventsReceiver) poll(ctx context.Context, l *lister) error {
	var errs []error
	for _, s := range scopesOf(r.cfg) {
		if err := r.pollScope(ctx, l, s); err != nil {
			errs = append(errs, r.classify(ctx, s, err))
		}
	}
	return errors.Join(errs...)
}

func (r *eventsReceiver) pollScope(ctx context.Context, l *lister, s scope) error {
	cur, ok := r.positions[s.id()]
	if !ok {
		// The first poll of a scope: with start_at end, only learn where
		// the stored Events end.
		cur = &cursor{}
		if r.cfg.StartAt == StartAtEnd {
			rev, err := l.mark(ctx, s)
			if err != nil {
				return err
			}
			cur.complete(rev)
			r.positions[s.id()] = cur
			return nil
		}
		r.positions[s.id()] = cur
	}
	return l.sync(ctx, s, cur, r.deliver)
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
