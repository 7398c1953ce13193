package k8sevents

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
)

// httpAPI serves a fakeAPI's Events over HTTP (lists and watches, in JSON),
// so that the receiver's real clients run against it: deadlines, cancelled
// requests and connections behave as on the wire. When silent, it answers
// nothing more, as the far end of a connection that stopped forwarding: each
// request is held unanswered until its client gives up or the test ends,
// and an open watch sends nothing more.
type httpAPI struct {
	api *fakeAPI
	srv *httptest.Server
	rc  *rest.Config

	silent atomic.Bool
	// release ends every held request when the test ends.
	release chan struct{}
	// conns counts the connections accepted; held, the requests held
	// unanswered; abandoned, those whose client gave up on them (closed the
	// HTTP/1.1 connection, or reset the HTTP/2 stream).
	conns, held, abandoned atomic.Int64
}

// startHTTPAPI serves api over plain HTTP/1.1, or over TLS with HTTP/2.
func startHTTPAPI(t *testing.T, api *fakeAPI, http2 bool) *httpAPI {
	t.Helper()
	h := &httpAPI{api: api, release: make(chan struct{})}
	h.srv = httptest.NewUnstartedServer(h)
	h.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			h.conns.Add(1)
		}
	}
	h.rc = &rest.Config{}
	if http2 {
		h.srv.EnableHTTP2 = true
		h.srv.StartTLS()
		h.rc.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw})
	} else {
		h.srv.Start()
	}
	h.rc.Host = h.srv.URL
	t.Cleanup(h.srv.Close)
	t.Cleanup(func() { close(h.release) }) // runs first: frees the held handlers
	return h
}

// clients are the receiver's clients of this server, as newClients builds
// them, with requestTimeout on requests.
func (h *httpAPI) clients(t *testing.T, requestTimeout time.Duration) clients {
	t.Helper()
	cs, err := clientsFor(rest.CopyConfig(h.rc), requestTimeout)
	require.NoError(t, err)
	return cs
}

// useWith makes the harness's receiver use this server instead of the fake
// clientset.
func (h *httpAPI) useWith(t *testing.T, hs *harness) {
	t.Helper()
	hs.rcv.newClients = func() (clients, error) { return h.clients(t, hs.rcv.cfg.RequestTimeout), nil }
}

// hold keeps a request unanswered until its client gives up or the test ends.
func (h *httpAPI) hold(r *http.Request) {
	h.held.Add(1)
	// Read the body, as a server does: only then does it notice that the
	// client closed the connection.
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
		h.abandoned.Add(1)
	case <-h.release:
	}
}

func (h *httpAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.silent.Load() {
		h.hold(r)
		return
	}
	// /api/v1/events or /api/v1/namespaces/<ns>/events
	path := strings.TrimPrefix(r.URL.Path, "/api/v1/")
	ns := ""
	if rest, ok := strings.CutPrefix(path, "namespaces/"); ok {
		ns, path, _ = strings.Cut(rest, "/")
	}
	if r.Method != http.MethodGet || path != "events" {
		writeStatus(w, apierrors.NewNotFound(corev1.Resource("events"), r.URL.Path))
		return
	}
	var opts metav1.ListOptions
	if err := scheme.ParameterCodec.DecodeParameters(r.URL.Query(), corev1.SchemeGroupVersion, &opts); err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	gvr := corev1.SchemeGroupVersion.WithResource("events")
	if opts.Watch {
		h.serveWatch(w, r, clienttesting.NewWatchAction(gvr, ns, opts))
		return
	}
	_, obj, err := h.api.react(clienttesting.NewListAction(gvr, corev1.SchemeGroupVersion.WithKind("Event"), ns, opts))
	if err != nil {
		writeStatus(w, err)
		return
	}
	list := obj.(*corev1.EventList)
	list.TypeMeta = metav1.TypeMeta{Kind: "EventList", APIVersion: "v1"}
	writeJSON(w, http.StatusOK, list)
}

// serveWatch streams the fakeAPI's watch as the API server does: one JSON
// watch event after another. Silent, it holds the stream at the next one.
func (h *httpAPI) serveWatch(w http.ResponseWriter, r *http.Request, action clienttesting.WatchActionImpl) {
	_, wi, err := h.api.reactWatch(action)
	if err != nil {
		writeStatus(w, err)
		return
	}
	defer wi.Stop()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher := w.(http.Flusher)
	flusher.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return
			}
			if h.silent.Load() {
				h.hold(r)
				return
			}
			raw, err := json.Marshal(withKind(ev.Object))
			if err != nil {
				return
			}
			if enc.Encode(metav1.WatchEvent{Type: string(ev.Type), Object: runtime.RawExtension{Raw: raw}}) != nil {
				return
			}
			flusher.Flush()
		}
	}
}

// withKind sets the kind a client decodes a watch event's object by.
func withKind(obj runtime.Object) runtime.Object {
	switch o := obj.(type) {
	case *corev1.Event:
		o = o.DeepCopy()
		o.TypeMeta = metav1.TypeMeta{Kind: "Event", APIVersion: "v1"}
		return o
	case *metav1.Status:
		o = o.DeepCopy()
		o.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
		return o
	}
	return obj
}

func writeStatus(w http.ResponseWriter, err error) {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		status = apierrors.NewInternalError(err)
	}
	s := status.Status()
	s.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	writeJSON(w, int(s.Code), &s)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
