package testbin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k8sevents/otelcol-k8sevents/internal/freeport"
)

// Server is a server program that a test harness (lokitest, promtest,
// amtest) starts with StartServer.
type Server struct {
	// Name names the server in messages, such as "loki".
	Name string
	// Binary is the program to run.
	Binary string
	// Ports is how many ports to pick free on 127.0.0.1 for the server; the
	// first is its HTTP port. Default: 1.
	Ports int
	// Args writes the server's files into dir, a directory of its own for
	// this start, and returns its command-line arguments for the ports
	// picked.
	Args func(dir string, ports []int) ([]string, error)
	// ReadyPath is the HTTP path that answers 200 once the server serves,
	// such as /ready.
	ReadyPath string
	// ReadyTimeout bounds the wait for ReadyPath; it only stops a broken
	// start from hanging the test. Default: 3 minutes.
	ReadyTimeout time.Duration
}

// Running is a server started by StartServer.
type Running struct {
	*Process
	// URL is the server's HTTP address, such as http://127.0.0.1:41234.
	URL string
	// Dir holds the files that Args wrote, and the log.
	Dir string
	// Ports are the ports picked for the server; the first is URL's.
	Ports []int
}

// portAttempts is how often StartServer tries other ports when one it
// picked was taken by someone else before the server bound it.
const portAttempts = 3

// StartServer starts s for t and waits until it is ready. The server is
// killed in t.Cleanup; when the test failed, the end of its log is logged.
// A failed start fails t with the end of the log.
func StartServer(t testing.TB, s Server) *Running {
	t.Helper()
	if s.Ports < 1 {
		s.Ports = 1
	}
	if s.ReadyTimeout == 0 {
		s.ReadyTimeout = 3 * time.Minute
	}
	dir := t.TempDir() // registered first, so removed after the server is killed
	for attempt := 1; ; attempt++ {
		r, err := startServer(s, filepath.Join(dir, fmt.Sprintf("run-%d", attempt)))
		if r == nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if err == nil {
			t.Cleanup(func() {
				r.Kill()
				if t.Failed() {
					t.Logf("%s: last lines of %s:\n%s", s.Name, r.LogPath(), LastLines(r.Output(), 60))
				}
			})
			return r
		}
		r.Kill()
		log := LastLines(r.Output(), 60)
		if attempt < portAttempts && strings.Contains(log, "address already in use") {
			continue
		}
		t.Fatalf("%s: %v; last lines of %s:\n%s", s.Name, err, r.LogPath(), log)
	}
}

// startServer starts one attempt in runDir. It returns a nil Running when
// nothing was started, and the Running with an error when the server did
// not become ready.
func startServer(s Server, runDir string) (*Running, error) {
	ports, err := freeport.Pick(s.Ports)
	if err != nil {
		return nil, err
	}
	if err = os.MkdirAll(runDir, 0o755); err != nil {
		return nil, err
	}
	args, err := s.Args(runDir, ports)
	if err != nil {
		return nil, err
	}
	p, err := Run(s.Binary, runDir, args, filepath.Join(runDir, s.Name+".log"))
	if err != nil {
		return nil, err
	}
	r := &Running{Process: p, URL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), Dir: runDir, Ports: ports}
	return r, r.waitReady(s)
}

// waitReady polls ReadyPath until it answers 200, the server exits or
// ReadyTimeout passes.
func (r *Running) waitReady(s Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		_, last := Get(ctx, r.URL+s.ReadyPath, nil)
		if last == nil {
			return nil
		}
		select {
		case <-r.Done():
			_, err := r.Exited()
			return fmt.Errorf("%s exited (%w) before it was ready", s.Name, err)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %v: %w", s.Name, s.ReadyTimeout, last)
		case <-tick.C:
		}
	}
}

// client is for requests to servers on 127.0.0.1; the timeout only stops a
// stuck server from hanging a test.
var client = &http.Client{Timeout: 30 * time.Second}

// Get GETs url with the headers given and returns the body of a 200 answer.
// Another status is an error that holds the body.
func Get(ctx context.Context, url string, header http.Header) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	if err = errors.Join(err, resp.Body.Close()); err != nil {
		return nil, fmt.Errorf("GET %s: read response: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// GetJSON GETs url and decodes a 200 answer's JSON body into out.
func GetJSON(ctx context.Context, url string, out any) error {
	body, err := Get(ctx, url, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: decode response: %w", url, err)
	}
	return nil
}
