package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// newIdentity names this replica in the Lease: the pod name (POD_NAME, else
// the hostname, which is the pod name in a pod) and a random suffix, so that
// two processes with one hostname never both believe they lead.
func newIdentity() string {
	base := os.Getenv("POD_NAME")
	if base == "" {
		base, _ = os.Hostname()
	}
	if base == "" {
		base = "k8sevents"
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	return base + "_" + hex.EncodeToString(suffix[:])
}

// electionConfig builds client-go's election settings for the Lease, and
// checks them as every term will.
func (r *eventsReceiver) electionConfig(client kubernetes.Interface, cfg *LeaderElectionConfig) (*leaderelection.LeaderElectionConfig, error) {
	lock := &leaseLock{
		Interface: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.LeaseNamespace, Name: cfg.LeaseName},
			Client:     client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: r.identity},
		},
		namespace: cfg.LeaseNamespace,
		name:      cfg.LeaseName,
		failures: failureLog{
			logger:       r.settings.Logger,
			failedMsg:    "Leader election cannot use its Lease; retrying",
			noAnswerMsg:  "Leader election: no answer from the API server about its Lease in %v; retrying",
			stillMsg:     "Leader election still cannot use its Lease",
			recoveredMsg: "Leader election can use its Lease again",
			countKey:     "failed_lease_requests",
		},
		retry:    cfg.RetryPeriod,
		deadline: r.deadline(),
	}
	lec := leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: cfg.LeaseDuration,
		RenewDeadline: cfg.RenewDeadline,
		RetryPeriod:   cfg.RetryPeriod,
		// Safe because the receiver cancels the elector's context only after
		// it stopped polling and wrote the checkpoint (see term): the next
		// leader takes over at once, from where this one stopped.
		ReleaseOnCancel: true,
		Name:            r.settings.ID.String(),
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {},
			OnStoppedLeading: func() {},
		},
	}
	if _, err := leaderelection.NewLeaderElector(lec); err != nil {
		return nil, fmt.Errorf("leader_election: %w", err)
	}
	return &lec, nil
}

// campaign runs terms until shutdown: a replica that lost the Lease
// campaigns again and may lead again later.
func (r *eventsReceiver) campaign(ctx context.Context, lec leaderelection.LeaderElectionConfig) {
	for ctx.Err() == nil {
		r.term(ctx, lec)
	}
}

// term campaigns until this replica leads, collects while it leads, and returns
// when it loses the Lease or shuts down.
//
// client-go runs the elector until its context ends or a renewal fails, and
// ReleaseOnCancel gives the Lease up as the elector stops. So the elector's
// context is not ctx: on shutdown the leader first stops collecting and
// writes the checkpoint (in lead), and only then is the elector stopped.
func (r *eventsReceiver) term(ctx context.Context, lec leaderelection.LeaderElectionConfig) {
	sink := zapSink{logger: r.settings.Logger.Named("leaderelection").Sugar()}
	electCtx, stopElecting := context.WithCancel(klog.NewContext(context.WithoutCancel(ctx), logr.New(sink)))
	defer stopElecting()
	leading := make(chan context.Context, 1)
	lec.Callbacks = leaderelection.LeaderCallbacks{
		OnStartedLeading: func(lctx context.Context) { leading <- lctx },
		OnStoppedLeading: func() {},
		OnNewLeader: func(id string) {
			if id != r.identity {
				r.settings.Logger.Info("Another replica is the leader", zap.String("leader", id), zap.String("identity", r.identity))
			}
		},
	}
	le, err := leaderelection.NewLeaderElector(lec)
	if err != nil { // checked in Start; kept from spinning all the same
		r.settings.Logger.Error("Cannot campaign for leadership", zap.Error(err))
		<-ctx.Done()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		le.Run(electCtx)
	}()
	select {
	case <-ctx.Done():
	case <-done:
	case lctx := <-leading:
		r.lead(ctx, lctx)
	}
	stopElecting()
	<-done
}

// lead collects while this replica holds the Lease (lctx), starting from the
// resume point as the previous leader left it. Losing the Lease cancels the
// lists and watches at once, so no further page is delivered, and the
// positions are dropped unwritten: the next leader writes its own. On
// shutdown, the positions are written before the Lease is released.
func (r *eventsReceiver) lead(ctx, lctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	pollCtx, cancel := context.WithCancel(lctx)
	defer cancel()
	stopOnShutdown := context.AfterFunc(ctx, cancel)
	defer stopOnShutdown()
	// On shutdown a page being delivered may finish; a lost Lease cancels it.
	delivering, cancelDelivering := context.WithCancel(r.delivering)
	defer cancelDelivering()
	stopOnLossDelivering := context.AfterFunc(lctx, cancelDelivering)
	defer stopOnLossDelivering()
	fields := []zap.Field{zap.String("identity", r.identity), zap.String("lease", leaseName(r.cfg))}
	// The loss is reported as it happens, and at the latest when collect
	// returns: losing the Lease cancels pollCtx too, and lead may reach the
	// deferred stop before the AfterFunc has run, which would skip it.
	var lossOnce sync.Once
	reportLoss := func() {
		lossOnce.Do(func() {
			if ctx.Err() == nil {
				r.tel.recordLeader(context.WithoutCancel(ctx), false)
				r.settings.Logger.Warn("Lost leadership; stopped emitting Kubernetes events", fields...)
			}
		})
	}
	stopOnLoss := context.AfterFunc(lctx, reportLoss)
	defer stopOnLoss()

	r.tel.recordLeader(ctx, true)
	r.settings.Logger.Info("Became leader; resuming from the checkpoint", fields...)
	r.positions = nil // read them again: the previous leader moved them
	r.collect(pollCtx, delivering)
	if lctx.Err() == nil {
		r.flush()
		r.tel.recordLeader(context.WithoutCancel(ctx), false)
		r.settings.Logger.Info("Shutting down as leader; releasing the Lease after the last checkpoint write", fields...)
	} else {
		reportLoss()
	}
	r.positions = nil
	if r.ckpt != nil {
		r.ckpt.forget()
	}
}

func leaseName(cfg *Config) string {
	le := cfg.LeaderElection.Get()
	return le.LeaseNamespace + "/" + le.LeaseName
}

// leaseLock is client-go's LeaseLock, with its failures logged the way the
// receiver logs its own, and a 403 naming the RBAC rule it lacks.
//
// Its client bounds each request by request_timeout. client-go bounds a
// leader's renewals by renew_deadline, but a follower tries to acquire the
// Lease with the elector's own context, which has no deadline: without
// request_timeout, a follower whose connection went silent would wait on it
// for good and never take over.
type leaseLock struct {
	resourcelock.Interface
	namespace, name string
	retry           time.Duration
	deadline        requestDeadline

	mu       sync.Mutex
	failures failureLog
}

func (l *leaseLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := l.Interface.Get(ctx)
	l.observe(ctx, "get", err)
	return rec, raw, err
}

func (l *leaseLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, ler)
	l.observe(ctx, "create", err)
	return err
}

func (l *leaseLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, ler)
	l.observe(ctx, "update", err)
	return err
}

// observe logs a failed request. A missing Lease (created next) and a lost
// race with another replica are part of the election, not failures.
func (l *leaseLock) observe(ctx context.Context, verb string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	op := fmt.Sprintf("%s Lease %q in namespace %q", verb, l.name, l.namespace)
	switch {
	case err == nil:
		l.failures.ok()
	case apierrors.IsNotFound(err) && verb == "get",
		apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
	case apierrors.IsForbidden(err):
		l.failures.fail(fmt.Errorf("%s Lease %q in namespace %q: %w; RBAC: grant verb %q on resource \"leases\" (apiGroups [\"coordination.k8s.io\"]) in namespace %q (Role%s); leader election needs get, create and update",
			verb, l.name, l.namespace, err, verb, l.namespace, resourceNamesHint(verb, l.name)), l.retry)
	default:
		l.failures.fail(l.deadline.check(ctx, op, verb, fmt.Errorf("%s: %w", op, err)), l.retry)
	}
}

// zapSink hands client-go's election logs to the collector's logger, at debug
// level: the receiver logs the changes that matter itself.
type zapSink struct{ logger *zap.SugaredLogger }

func (zapSink) Init(logr.RuntimeInfo) {}

func (s zapSink) Enabled(level int) bool {
	return level == 0 && s.logger.Desugar().Core().Enabled(zapcore.DebugLevel)
}

func (s zapSink) Info(_ int, msg string, keysAndValues ...any) {
	s.logger.Debugw(msg, keysAndValues...)
}

func (s zapSink) Error(err error, msg string, keysAndValues ...any) {
	s.logger.Debugw(msg, append(keysAndValues, "error", err)...)
}

func (s zapSink) WithValues(keysAndValues ...any) logr.LogSink {
	return zapSink{logger: s.logger.With(keysAndValues...)}
}

func (s zapSink) WithName(name string) logr.LogSink {
	return zapSink{logger: s.logger.Named(name)}
}
