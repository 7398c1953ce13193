package k8sevents

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents/internal/metadata"
)

// The user agent names the receiver and its own version first, in any
// distribution; the distribution and the component ID follow.
func TestUserAgent(t *testing.T) {
	receiverToken := "k8seventsreceiver/" + metadata.Version
	for _, tc := range []struct {
		name  string
		build component.BuildInfo
		id    component.ID
		want  string
	}{
		{
			"this distribution",
			component.BuildInfo{Command: "otelcol-k8sevents", Version: metadata.Version},
			component.NewID(metadata.Type),
			receiverToken + " otelcol-k8sevents/" + metadata.Version + " (k8sevents)",
		},
		{
			"another distribution",
			component.BuildInfo{Command: "otelcol-acme", Version: "3.2.1"},
			component.NewIDWithName(metadata.Type, "prod"),
			receiverToken + " otelcol-acme/3.2.1 (k8sevents/prod)",
		},
		{
			"a distribution without a version",
			component.BuildInfo{Command: "otelcol-acme"},
			component.NewID(metadata.Type),
			receiverToken + " otelcol-acme (k8sevents)",
		},
		{
			"no build info",
			component.BuildInfo{},
			component.NewID(metadata.Type),
			receiverToken + " (k8sevents)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := receivertest.NewNopSettings(metadata.Type)
			set.BuildInfo, set.ID = tc.build, tc.id
			assert.Equal(t, tc.want, userAgent(set))
		})
	}
}

const twoContexts = `apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://a.example:6443"}
- name: b
  cluster: {server: "https://b.example:6443"}
users:
- name: u
  user: {token: "t"}
contexts:
- name: ctx-a
  context: {cluster: a, user: u}
- name: ctx-b
  context: {cluster: b, user: u}
current-context: ctx-a
`

func TestRestConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(path, []byte(twoContexts), 0o600))
	t.Setenv("KUBECONFIG", path)

	for _, tc := range []struct {
		name     string
		context  string
		wantHost string
	}{
		{"current context", "", "https://a.example:6443"},
		{"context key", "ctx-b", "https://b.example:6443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := createDefaultConfig()
			cfg.AuthType, cfg.Context = AuthTypeKubeConfig, tc.context
			rc, err := restConfig(cfg, "otelcol-k8sevents/test")
			require.NoError(t, err)
			assert.Equal(t, tc.wantHost, rc.Host)
			assert.Equal(t, "t", rc.BearerToken)
			// Lists ask for protobuf, falling back to JSON.
			assert.Equal(t, "application/vnd.kubernetes.protobuf", rc.ContentType)
			assert.Equal(t, "application/vnd.kubernetes.protobuf,application/json", rc.AcceptContentTypes)
			assert.Equal(t, "otelcol-k8sevents/test", rc.UserAgent)
			// Poll mode (the default): client-go's rate limit paces the lists.
			assert.Zero(t, rc.QPS)
			assert.Zero(t, rc.Burst)
		})
	}

	t.Run("watch mode", func(t *testing.T) {
		cfg := createDefaultConfig()
		cfg.AuthType, cfg.Mode = AuthTypeKubeConfig, ModeWatch
		rc, err := restConfig(cfg, "ua")
		require.NoError(t, err)
		assert.Equal(t, float32(50), rc.QPS, "the list at start or after a 410 of 100,000 Events in seconds, not 40 s at client-go's 5 a second")
		assert.Equal(t, 100, rc.Burst)
	})

	t.Run("unknown context", func(t *testing.T) {
		cfg := createDefaultConfig()
		cfg.AuthType, cfg.Context = AuthTypeKubeConfig, "nope"
		_, err := restConfig(cfg, "ua")
		assert.ErrorContains(t, err, "load kubeconfig")
		assert.ErrorContains(t, err, "nope")
	})
	t.Run("serviceAccount outside a cluster", func(t *testing.T) {
		t.Setenv("KUBERNETES_SERVICE_HOST", "")
		t.Setenv("KUBERNETES_SERVICE_PORT", "")
		_, err := restConfig(createDefaultConfig(), "ua")
		assert.ErrorContains(t, err, "auth_type serviceAccount")
	})
	t.Run("none outside a cluster", func(t *testing.T) {
		t.Setenv("KUBERNETES_SERVICE_HOST", "")
		cfg := createDefaultConfig()
		cfg.AuthType = AuthTypeNone
		_, err := restConfig(cfg, "ua")
		assert.ErrorContains(t, err, "KUBERNETES_SERVICE_HOST")
	})
	t.Run("none in a cluster", func(t *testing.T) {
		t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
		t.Setenv("KUBERNETES_SERVICE_PORT", "443")
		cfg := createDefaultConfig()
		cfg.AuthType = AuthTypeNone
		rc, err := restConfig(cfg, "ua")
		require.NoError(t, err)
		assert.Equal(t, "https://10.0.0.1:443", rc.Host)
		assert.Empty(t, rc.BearerToken)
	})
}
