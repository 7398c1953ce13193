package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// collector is one run of a collector binary as a child process.
type collector struct {
	*testbin.Process
	started time.Time
}

// startCollector runs bin with the configuration at cfg and env added to
// this process's environment, logging to logPath (appended to).
func startCollector(bin, cfg, logPath string, env ...string) (*collector, error) {
	p, err := testbin.Run(bin, "", []string{"--config", cfg}, logPath, env...)
	if err != nil {
		return nil, err
	}
	return &collector{Process: p, started: time.Now()}, nil
}

// waitOutput waits until the log has s in it after offset bytes.
func (c *collector) waitOutput(ctx context.Context, s string, offset int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if out := c.Output(); len(out) >= offset && strings.Contains(out[offset:], s) {
			return nil
		}
		select {
		case <-c.Done():
			_, err := c.Exited()
			return fmt.Errorf("collector exited (%w) before logging %q:\n%s", err, s, testbin.LastLines(c.Output(), 30))
		case <-ctx.Done():
			return fmt.Errorf("collector did not log %q: %w:\n%s", s, ctx.Err(), testbin.LastLines(c.Output(), 30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
