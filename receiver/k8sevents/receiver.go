package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"context"
	"errors"
	"fmt"
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

// The data path of both modes is: source (list pages in poll.go, or a list
// then a watch in watch.go) -> cursor filter (cursor.go) -> convert
// (convert.go) -> next consumer (deliver, below) -> resume point
// (checkpoint.go). This file holds the lifecycle and the steps both share.

const (
	transport = "http"
	format    = "kubernetes_event"
	// deliveryGrace is how long Shutdown lets a page being delivered finish.
	// An exporter retrying a backend that is down would otherwise hold the
	// shutdown until its retries give up; a page cut short is not counted
	// as delivered, so it comes again after the restart.
	deliveryGrace = 5 * time.Second
	// clusterNameWarning is logged at start when cluster_name is empty.
	clusterNameWarning = "cluster_name is not set: the records carry no k8s.cluster.name, so a backend cannot tell this cluster's Events from another's (in Loki, no k8s_cluster_name label); set cluster_name"
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
	// newClients builds the API clients in Start; tests replace it.
	newClients func() (clients, error)
	// client makes every request to the API server but the watch streams,
	// each bounded by request_timeout; watches makes the watch streams.
	// redial makes the next request close the idle connections (see clients).
	client  kubernetes.Interface
	watches kubernetes.Interface
	redial  func()
	// lookup finds the owners and labels of involved objects; nil when
	// extract asks for nothing.
	lookup *resolver
	// conv converts pages with cluster_name, rules and severity_text.
	conv converter
	// now is the clock for ObservedTimestamp; tests replace it.
	now func() time.Time
	// deliveryGrace is the constant of that name; tests shorten it.
	deliveryGrace time.Duration
	// watch holds the timings of watch mode; tests shorten them.
	watch watchTimings

	// store and ckpt keep the resume point; nil when none is configured.
	store positionStore
	ckpt  *checkpointer
	// positions is how far each scope has been delivered, as loaded from the
	// store; nil until it is loaded. In poll mode the polling goroutine owns
	// the cursors; in watch mode each scope's streamer owns its own. Either
	// way they hand copies to the checkpointer when they move.
	positions map[string]*cursor

	// cancel stops collecting: no list, watch or page starts after it.
	cancel context.CancelFunc
	// delivering is the context of the pages handed to the next consumer.
	// Shutdown does not cancel it at once: a page being delivered may finish
	// (within Shutdown's own context), so that the resume point written on
	// shutdown covers it and a restart repeats nothing.
	delivering       context.Context
	cancelDelivering context.CancelFunc
	done             chan struct{}
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
	conv, err := newConverter(cfg)
	if err != nil {
		return nil, fmt.Errorf("compile rules: %w", err)
	}
	return &eventsReceiver{
		cfg:        cfg,
		settings:   set,
		next:       next,
		obs:        obs,
		tel:        tel,
		scopes:     scopesOf(cfg),
		identity:   newIdentity(),
		newClients: func() (clients, error) { return newClients(cfg, userAgent(set)) },
		now:        time.Now,
		conv:       conv,

		deliveryGrace: deliveryGrace,
		watch:         defaultWatchTimings,
	}, nil
}

// Start builds the API client, resolves the storage extension and starts
// collecting (or campaigning for the Lease). It does not wait for the API
// server: an unreachable server is retried by the collection loop, which
// also reads the resume point before it lists or watches.
func (r *eventsReceiver) Start(ctx context.Context, host component.Host) error {
	cs, err := r.newClients()
	if err != nil {
		return err
	}
	client := cs.requests
	r.client, r.watches, r.redial = cs.requests, cs.watches, cs.redial
	if r.redial == nil {
		r.redial = func() {}
	}
	if r.cfg.Extract.enabled() {
		r.lookup = newResolver(cs.metadata, r.cfg, r.conv.keeps, r.tel, r.settings.Logger)
		r.lookup.expired = r.deadline().expired
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
		r.store = &configMapStore{client: client, namespace: checkpoint.Namespace, name: checkpoint.Name, deadline: r.deadline()}
	}
	if r.store != nil {
		r.ckpt = newCheckpointer(r.store, r.cfg, r.scopes, r.settings.Logger, r.tel)
	}

	if r.cfg.ClusterName == "" {
		r.settings.Logger.Warn(clusterNameWarning)
	}
	r.tel.zero(ctx, r.cfg.Mode)

	collectCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.delivering, r.cancelDelivering = context.WithCancel(context.Background())
	r.done = make(chan struct{})
	fields := []zap.Field{
		zap.String("mode", string(r.cfg.Mode)),
		zap.Strings("namespaces", r.cfg.Namespaces), zap.Strings("exclude_namespaces", r.cfg.ExcludeNamespaces),
		zap.String("field_selector", r.cfg.FieldSelector), zap.String("start_at", string(r.cfg.StartAt)),
	}
	if r.cfg.Mode == ModeWatch {
		fields = append(fields, zap.Duration("batch_timeout", r.cfg.BatchTimeout))
	} else {
		fields = append(fields, zap.Duration("interval", r.cfg.Interval))
	}
	if r.store != nil {
		fields = append(fields, zap.Stringer("checkpoint", r.store), zap.Duration("checkpoint_interval", r.cfg.CheckpointInterval))
	}
	if elect != nil {
		le := r.cfg.LeaderElection.Get()
		r.settings.Logger.Info("Campaigning for leadership; only the leader reads Kubernetes events",
			append(fields, zap.String("identity", r.identity), zap.String("lease_namespace", le.LeaseNamespace), zap.String("lease_name", le.LeaseName))...)
		r.tel.recordLeader(ctx, false)
		go func() {
			defer close(r.done)
			r.campaign(collectCtx, *elect)
		}()
		return nil
	}
	r.settings.Logger.Info("Reading Kubernetes events", fields...)
	go func() {
		defer close(r.done)
		r.collect(collectCtx, r.delivering)
		r.flush()
	}()
	return nil
}

// Shutdown stops collecting, lets a page being delivered finish (for at
// most deliveryGrace, and while ctx lasts), writes the resume point with ctx
// and, as leader, only then gives up the Lease. It is safe before Start and
// safe twice.
func (r *eventsReceiver) Shutdown(ctx context.Context) error {
	r.shutdownCtx.Store(&ctx)
	if r.cancel != nil {
		r.cancel()
		stop := context.AfterFunc(ctx, r.cancelDelivering)
		grace := time.AfterFunc(r.deliveryGrace, r.cancelDelivering)
		<-r.done
		stop()
		grace.Stop()
		r.cancelDelivering()
	}
	if r.lookup != nil {
		r.lookup.stop()
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

// collect reads the resume point, then runs the configured mode until ctx
// ends. ctx governs the requests to the API server; delivering, the pages
// handed to the next consumer.
func (r *eventsReceiver) collect(ctx, delivering context.Context) {
	if !r.resume(ctx) {
		return
	}
	if r.cfg.Mode == ModeWatch {
		r.watchScopes(ctx, delivering)
		return
	}
	r.poll(ctx, delivering)
}

// resume loads the positions from the store (or starts without any),
// retrying with back-off until it succeeds or ctx ends.
func (r *eventsReceiver) resume(ctx context.Context) bool {
	if r.ckpt == nil {
		r.positions = make(map[string]*cursor)
		return true
	}
	loads := failureLog{
		logger:       r.settings.Logger,
		failedMsg:    "Reading the checkpoint failed; retrying before the first list",
		noAnswerMsg:  "Reading the checkpoint: no answer from the API server in %v; retrying before the first list",
		stillMsg:     "Reading the checkpoint still fails",
		recoveredMsg: "Reading the checkpoint works again",
		countKey:     "failed_reads",
	}
	for {
		positions, err := r.ckpt.load(ctx)
		if err == nil {
			loads.ok()
			r.positions = positions
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		wait := retryWait(loads.failures+1, r.cfg.Interval)
		loads.fail(err, wait)
		if !sleep(ctx, wait) {
			return false
		}
	}
}

// moved hands the checkpointer a copy of a scope's cursor that just moved.
func (r *eventsReceiver) moved(s scope, cur *cursor) {
	if r.ckpt != nil {
		r.ckpt.publish(s.id(), cur)
	}
}

// checkpoint writes the positions if they changed and the interval allows.
// One goroutine calls it: the polling one, or watch mode's supervisor.
func (r *eventsReceiver) checkpoint(ctx context.Context) {
	if r.ckpt != nil {
		r.ckpt.save(ctx, false)
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
	r.ckpt.save(ctx, true)
}

// markEnd gives a scope its first position with start_at end: the revision
// where its stored Events end, which a later list or watch starts after.
func (r *eventsReceiver) markEnd(ctx context.Context, l *lister, s scope) (*cursor, error) {
	rev, err := l.mark(ctx, s)
	if err != nil {
		return nil, err
	}
	cur := &cursor{}
	cur.complete(rev)
	r.moved(s, cur)
	return cur, nil
}

// logMarked says where start_at end started, once per pass over the scopes.
func (r *eventsReceiver) logMarked(marked []string) {
	if len(marked) > 0 {
		r.settings.Logger.Info("start_at end: skipped the Events already stored; emitting the changes made after these revisions",
			zap.Strings("scope_revisions", marked))
	}
}

// deliver converts a page of Events and hands it to the next consumer. A
// permanent error means the data can never be accepted: it is dropped, and
// logged, so that one bad batch cannot stop collection for good.
func (r *eventsReceiver) deliver(ctx context.Context, events []corev1.Event) error {
	var found map[objectRef][]attr
	if r.lookup != nil {
		found = r.lookup.resolve(ctx, events)
	}
	handoff := time.Now()
	logs, matches := r.conv.convert(events, r.now(), found)
	r.tel.recordDelays(ctx, events, handoff)
	r.tel.recordRules(ctx, r.conv.rules, matches)
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

// classify counts an error of a list or watch (verb) and, for a 403, names
// the RBAC rule that is missing; for a 400 about the field selector, the key;
// for a request that got no answer in time, the deadline (see deadline.go).
func (r *eventsReceiver) classify(ctx context.Context, s scope, verb string, err error) error {
	var de errDeliver
	switch {
	case errors.As(err, &de):
		r.tel.recordError(ctx, "consume")
		return err
	case noAnswer(ctx, err):
		return r.deadline().check(ctx, verb+" "+s.describe(), verb, err)
	case apierrors.IsForbidden(err):
		r.tel.recordError(ctx, "forbidden")
		where := "cluster-wide (ClusterRole)"
		if s.namespace != "" {
			where = fmt.Sprintf("in namespace %q (Role)", s.namespace)
		}
		return fmt.Errorf("%w; RBAC: grant verb %q on resource \"events\" (apiGroups [\"\"]) %s", err, verb, where)
	case apierrors.IsBadRequest(err) && r.cfg.FieldSelector != "":
		r.tel.recordError(ctx, verb)
		return fmt.Errorf("%w; field_selector: the API server refused %q (Events support fields such as involvedObject.kind, involvedObject.name, reason, type, source, reportingComponent)", err, r.cfg.FieldSelector)
	default:
		r.tel.recordError(ctx, verb)
		return err
	}
}
