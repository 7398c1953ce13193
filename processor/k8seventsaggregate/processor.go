package k8seventsaggregate // import "github.com/k8sevents/otelcol-k8sevents/processor/k8seventsaggregate"

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor"
	"go.uber.org/zap"
)

var _ processor.Logs = (*aggregateProcessor)(nil)

type aggregateProcessor struct {
	cfg    *Config
	next   consumer.Logs
	logger *zap.Logger
	tel    *telemetry
	// now is the clock of the windows; tests replace it.
	now func() time.Time

	mu sync.Mutex
	// windows are the open windows by key; queue holds them in the order
	// they close, which is the order they opened (they all last Window).
	windows map[string]*window
	queue   []queued
	// full is true while max_keys windows are open (logged once).
	full   bool
	keyBuf strings.Builder

	// wake tells the flusher that a window opened.
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

type queued struct {
	key string
	w   *window
}

func newProcessor(set processor.Settings, cfg *Config, next consumer.Logs) (*aggregateProcessor, error) {
	tel, err := newTelemetry(set.TelemetrySettings, set.ID)
	if err != nil {
		return nil, fmt.Errorf("create processor metrics: %w", err)
	}
	return &aggregateProcessor{
		cfg:     cfg,
		next:    next,
		logger:  set.Logger,
		tel:     tel,
		now:     time.Now,
		windows: make(map[string]*window),
		wake:    make(chan struct{}, 1),
	}, nil
}

// Capabilities: records that are counted are removed from the data.
func (*aggregateProcessor) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: true}
}

// Start runs the flusher, which sends the summary of each window when it
// closes.
func (p *aggregateProcessor) Start(context.Context, component.Host) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.done = make(chan struct{})
	go p.run(ctx)
	return nil
}

// Shutdown stops the flusher and sends the summaries of the windows still
// open. Safe before Start and twice.
func (p *aggregateProcessor) Shutdown(ctx context.Context) error {
	if p.cancel != nil {
		p.cancel()
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("wait for the flusher: %w", ctx.Err())
		}
	}
	p.mu.Lock()
	open := make([]*window, 0, len(p.queue))
	for _, q := range p.queue {
		open = append(open, q.w)
	}
	p.queue, p.windows = nil, make(map[string]*window)
	p.mu.Unlock()
	p.emit(ctx, open, p.now())
	return nil
}

// ConsumeLogs lets the first record of each key in a window pass and counts
// the others, which it removes. When the next consumer refuses what passed,
// the windows are put back as they were, so that the same data sent again
// is treated the same way.
func (p *aggregateProcessor) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	end := p.now().Add(p.cfg.Window)
	var j journal
	ld.ResourceLogs().RemoveIf(func(rl plog.ResourceLogs) bool {
		res := rl.Resource().Attributes()
		rl.ScopeLogs().RemoveIf(func(sl plog.ScopeLogs) bool {
			sl.LogRecords().RemoveIf(func(lr plog.LogRecord) bool {
				return p.aggregate(&j, res, lr, end)
			})
			return sl.LogRecords().Len() == 0
		})
		return rl.ScopeLogs().Len() == 0
	})
	if j.passed > 0 {
		if err := p.next.ConsumeLogs(ctx, ld); err != nil {
			p.undo(&j)
			return err
		}
	}
	if j.opened > 0 {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	p.tel.recordAggregated(ctx, int64(len(j.counted)))
	return nil
}

// journal records what one ConsumeLogs changed, to undo it.
type journal struct {
	passed  int
	opened  int // windows opened, the last ones of the queue
	counted []counted
}

type counted struct {
	w    *window
	prev tally
}

// aggregate handles one record and reports whether it is removed.
func (p *aggregateProcessor) aggregate(j *journal, resource pcommon.Map, lr plog.LogRecord, end time.Time) bool {
	key, ok := keyOf(p.cfg.Keys, &p.keyBuf, resource, lr.Attributes())
	if !ok {
		j.passed++
		return false
	}
	if w := p.windows[key]; w != nil {
		j.counted = append(j.counted, counted{w: w, prev: w.tally})
		w.add(lr)
		return true
	}
	j.passed++
	if len(p.windows) >= p.cfg.MaxKeys {
		if !p.full {
			p.full = true
			p.logger.Warn("max_keys windows are open; records of further keys pass without aggregation until windows close",
				zap.Int("max_keys", p.cfg.MaxKeys))
		}
		return false
	}
	w := newWindow(p.cfg.Keys, resource, lr.Attributes(), end)
	p.windows[key] = w
	p.queue = append(p.queue, queued{key: key, w: w})
	j.opened++
	return false
}

func (p *aggregateProcessor) undo(j *journal) {
	for i := len(j.counted) - 1; i >= 0; i-- {
		j.counted[i].w.tally = j.counted[i].prev
	}
	opened := p.queue[len(p.queue)-j.opened:]
	for _, q := range opened {
		delete(p.windows, q.key)
	}
	clear(opened)
	p.queue = p.queue[:len(p.queue)-j.opened]
}

// run sends the summaries of windows as they close, until ctx ends.
func (p *aggregateProcessor) run(ctx context.Context) {
	defer close(p.done)
	timer := time.NewTimer(p.cfg.Window)
	defer timer.Stop()
	for {
		wait, pending := p.flushDue(ctx)
		if pending {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-timer.C:
		}
	}
}

// flushDue closes the windows whose end has come and sends their
// summaries. It returns how long until the next window closes, if one is
// open.
func (p *aggregateProcessor) flushDue(ctx context.Context) (wait time.Duration, pending bool) {
	now := p.now()
	p.mu.Lock()
	var due []*window
	n := 0
	for n < len(p.queue) && !p.queue[n].w.end.After(now) {
		due = append(due, p.queue[n].w)
		delete(p.windows, p.queue[n].key)
		n++
	}
	clear(p.queue[:n])
	p.queue = p.queue[n:]
	if len(p.queue) > 0 {
		wait, pending = p.queue[0].w.end.Sub(now), true
	}
	if p.full && len(p.windows) < p.cfg.MaxKeys {
		p.full = false
		p.logger.Info("Windows closed below max_keys; aggregating records of new keys again", zap.Int("max_keys", p.cfg.MaxKeys))
	}
	p.mu.Unlock()
	p.emit(ctx, due, now)
	return wait, pending
}

// emit sends one summary record for each window that counted records.
func (p *aggregateProcessor) emit(ctx context.Context, windows []*window, now time.Time) {
	logs := plog.NewLogs()
	var records int64
	for _, w := range windows {
		if w.count > 0 {
			w.appendSummary(logs, now)
			records += w.count
		}
	}
	n := logs.ResourceLogs().Len()
	if n == 0 {
		return
	}
	// The flusher's context ends at shutdown, which then sends the windows
	// still open itself; a summary already due goes out regardless.
	err := p.next.ConsumeLogs(context.WithoutCancel(ctx), logs)
	p.tel.recordSummaries(ctx, int64(n), err)
	if err != nil {
		p.logger.Warn("The next consumer refused summaries of aggregated Kubernetes events; they are lost",
			zap.Int("summaries", n), zap.Int64("aggregated_records", records), zap.Error(err))
	}
}
