package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// minRetry is the first wait after a failure; it doubles up to the
// configured interval.
const minRetry = time.Second

// retryWait is the wait before the next try after failures failures in a
// row: minRetry, doubled after each, at most longest.
func retryWait(failures int, longest time.Duration) time.Duration {
	return min(longest, minRetry<<min(max(failures, 1)-1, 16))
}

// sleep waits for d, or until ctx ends; it reports whether the wait ran out.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// failureLog logs a failure that repeats when it starts and when it changes,
// and the recovery once, so that an outage does not flood the log.
type failureLog struct {
	logger                            *zap.Logger
	failedMsg, stillMsg, recoveredMsg string
	// noAnswerMsg is logged in place of failedMsg when the failure is a
	// request that got no answer (errNoAnswer), with %v for its deadline:
	// "... no answer from the API server in 30s; ...".
	noAnswerMsg string
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
		logMsg := f.failedMsg
		if na := (errNoAnswer{}); f.noAnswerMsg != "" && errors.As(err, &na) {
			logMsg = fmt.Sprintf(f.noAnswerMsg, na.within)
			fields = append(fields, zap.String("verb", na.verb), zap.Duration("request_timeout", na.within))
		}
		f.logger.Warn(logMsg, append(fields, zap.Duration("retry_in", retry))...)
		f.lastErr = msg
		return
	}
	f.logger.Debug(f.stillMsg, fields...)
}

func (f *failureLog) ok(fields ...zap.Field) {
	if f.failures > 0 {
		f.logger.Info(f.recoveredMsg, append(fields,
			zap.Int(f.countKey, f.failures), zap.Duration("after", time.Since(f.since).Round(time.Second)))...)
	}
	f.failures, f.lastErr = 0, ""
}
