package main

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{
			name: "utime 250 and stime 50 ticks",
			stat: "4242 (otelcol-peer) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 100 1000000 500 18446744073709551615",
			want: 3 * time.Second,
		},
		{
			name: "command with spaces and a parenthesis",
			stat: "7 (a b) c)) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 100 0 0",
			want: 30 * time.Millisecond,
		},
		{name: "no command", stat: "7 R 1", wantErr: true},
		{name: "too few fields", stat: "7 (x) R 1 7 7", wantErr: true},
		{name: "not a number", stat: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 x 2 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU(tt.stat)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\totelcol\nVmPeak:\t  900000 kB\nVmHWM:\t   58368 kB\nVmRSS:\t   40000 kB\n"
	got, err := parseStatusKB(status, "VmHWM")
	require.NoError(t, err)
	assert.Equal(t, int64(58368*1024), got)

	_, err = parseStatusKB(status, "VmSwap")
	assert.ErrorContains(t, err, "no VmSwap line")
	_, err = parseStatusKB("VmHWM:\t 12 pages\n", "VmHWM")
	assert.Error(t, err)
}

// The readers work on this very process: it has used some CPU and memory.
func TestProcReadersOnSelf(t *testing.T) {
	pid := os.Getpid()
	rss, err := peakRSS(pid)
	require.NoError(t, err)
	assert.Greater(t, rss, int64(1<<20))
	before, err := cpuTime(pid)
	require.NoError(t, err)
	deadline := time.Now().Add(200 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		_ = n * n
	}
	after, err := cpuTime(pid)
	require.NoError(t, err)
	assert.Greater(t, after, before)
}
