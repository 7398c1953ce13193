package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/leaderelection"
)

// AuthType says how the receiver authenticates to the Kubernetes API.
type AuthType string

const (
	// AuthTypeServiceAccount uses the pod's ServiceAccount token and the
	// in-cluster API address (KUBERNETES_SERVICE_HOST/PORT).
	AuthTypeServiceAccount AuthType = "serviceAccount"
	// AuthTypeKubeConfig uses the file named by KUBECONFIG, or ~/.kube/config.
	AuthTypeKubeConfig AuthType = "kubeConfig"
	// AuthTypeNone connects to the in-cluster API address with no credentials.
	AuthTypeNone AuthType = "none"
)

// StartAt says which Events the receiver emits on its first poll.
type StartAt string

const (
	// StartAtEnd emits only Events that appear or change after the receiver starts.
	StartAtEnd StartAt = "end"
	// StartAtBeginning also emits the Events already stored when it starts.
	StartAtBeginning StartAt = "beginning"
)

// Mode says how the receiver reads Events.
type Mode string

const (
	// ModePoll lists the Events of every scope once at start and then every
	// interval, and emits those that changed since the last list.
	ModePoll Mode = "poll"
	// ModeWatch lists once (or not at all, when resuming), then watches each
	// scope and emits every change as it happens, in batches.
	ModeWatch Mode = "watch"
)

// Defaults of the fields below.
const (
	defaultInterval = time.Minute
	defaultPageSize = 500
	// maxPageSize keeps one page, the most the receiver holds at once, bounded.
	maxPageSize = 10000

	defaultBatchTimeout = 200 * time.Millisecond
	// maxBatchTimeout keeps "within a second" true whatever the setting.
	maxBatchTimeout = 10 * time.Second

	// defaultRequestTimeout is half of kube-apiserver's own limit for a
	// request that is not a watch (--request-timeout, 1m by default), after
	// which the server answers 504 anyway; a page of 10,000 Events (the
	// largest page_size) comes from the API server's watch cache in well
	// under a second, so a page that takes longer than this is not slow but
	// lost on a connection that went silent.
	defaultRequestTimeout = 30 * time.Second

	defaultCheckpointInterval = 5 * time.Second
	defaultLeaseDuration      = 15 * time.Second
	defaultRenewDeadline      = 10 * time.Second
	defaultRetryPeriod        = 2 * time.Second

	// defaultCacheSize is sized for a 5,000-node cluster: at 30 Pods a node it
	// runs 150,000 Pods, and the Events of the last hour (the API server's
	// default --event-ttl) name a fraction of them, plus their ReplicaSets
	// and Jobs; a rollout of 1,000 replicas adds 1,000 Pods and one
	// ReplicaSet. 20,000 entries of about 0.8 KiB each (measured by
	// TestCacheEntrySize: key, owner reference, two labels and the LRU's
	// bookkeeping) are about 16 MiB; an object that fell out costs one GET
	// when it has an Event again.
	defaultCacheSize = 20000
	maxCacheSize     = 1000000
	// defaultCacheTTL is how long an answer is used: a Pod's owner never
	// changes, so this only bounds how stale a label may be, and makes each
	// object with Events cost at most one GET per TTL.
	defaultCacheTTL = 10 * time.Minute
	maxCacheTTL     = 24 * time.Hour
)

// Config is what users set under `receivers: k8sevents:` in collector YAML.
type Config struct {
	// AuthType is how to authenticate: serviceAccount, kubeConfig or none.
	// Default: serviceAccount.
	AuthType AuthType `mapstructure:"auth_type"`
	// Mode is how Events are read: poll (list every interval) or watch
	// (list once, then stream every change). Default: poll.
	Mode Mode `mapstructure:"mode"`
	// Context is the kubeconfig context to use with auth_type kubeConfig.
	// Default: the kubeconfig's current context.
	Context string `mapstructure:"context"`
	// Namespaces are the namespaces whose Events are read. Empty means all
	// namespaces, read with one cluster-wide list. Default: empty.
	Namespaces []string `mapstructure:"namespaces"`
	// ExcludeNamespaces are left out when reading all namespaces (filtered by the
	// API server with a field selector). Not allowed together with namespaces.
	// Default: empty.
	ExcludeNamespaces []string `mapstructure:"exclude_namespaces"`
	// FieldSelector is a field selector the API server applies to every list
	// and watch, such as "type=Warning" or "involvedObject.kind=Pod,reason!=Pulled".
	// It is combined with exclude_namespaces. Default: empty (every Event).
	FieldSelector string `mapstructure:"field_selector"`
	// Interval is the time between the starts of two polls; in watch mode,
	// the longest wait between two retries after a failure. Default: 1m.
	Interval time.Duration `mapstructure:"interval"`
	// PageSize is the number of Events asked for in one list request, and the
	// most Events in one batch of a watch: the most the receiver holds in
	// memory at once. Default: 500.
	PageSize int64 `mapstructure:"page_size"`
	// BatchTimeout is, in watch mode, how long a batch waits for more Events
	// after its first before it is handed on (it also closes at page_size
	// Events). Default: 200ms.
	BatchTimeout time.Duration `mapstructure:"batch_timeout"`
	// RequestTimeout is the longest the receiver waits for the answer to
	// one request to the API server that is not a watch stream: a list
	// page, the answer to a watch request (until its stream starts), a read
	// or write of the checkpoint ConfigMap or of the leader_election Lease.
	// A request that runs out of time is logged and retried from the
	// cursor on a new connection, so that a connection that went silent (a
	// NAT or load balancer that lost its flow) cannot hang the receiver. Watch streams are not cut by it: a stream that brings
	// nothing, not even a bookmark, is replaced by its own stall timer.
	// Default: 30s.
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	// StartAt is which Events the first poll emits: end (only those that
	// appear or change after the start) or beginning (also those already
	// stored). Default: end.
	StartAt StartAt `mapstructure:"start_at"`
	// ClusterName, when set, is emitted as the resource attribute
	// k8s.cluster.name. Default: empty (not emitted).
	ClusterName string `mapstructure:"cluster_name"`

	// Storage is the ID of a storage extension (file_storage, for one) that
	// keeps the resume point across restarts. Not allowed together with
	// checkpoint. Default: none.
	Storage *component.ID `mapstructure:"storage"`
	// Checkpoint keeps the resume point in a ConfigMap of the cluster, which
	// the replicas of a Deployment share and which survives a replaced pod.
	// Not allowed together with storage. Default: none.
	Checkpoint configoptional.Optional[CheckpointConfig] `mapstructure:"checkpoint"`
	// CheckpointInterval is the shortest time between two writes of the
	// resume point (to storage or checkpoint); it is also written on
	// shutdown. A crash repeats at most the Events delivered in the last
	// interval. Default: 5s.
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval"`
	// LeaderElection, when set, makes the replicas that share its Lease elect
	// one of them, and only that one polls. Needs checkpoint (or a storage
	// extension that every replica reaches) so that a new leader resumes
	// where the old one stopped. `enabled: false` turns it off.
	// Default: off.
	LeaderElection configoptional.Optional[LeaderElectionConfig] `mapstructure:"leader_election"`

	// SeverityText is what a record's severity text holds: event_type (the
	// Event's type, Normal or Warning, as contrib's k8s_events writes it) or
	// level (INFO, WARN, ERROR, FATAL, from which Loki derives
	// detected_level). Default: event_type.
	SeverityText SeverityText `mapstructure:"severity_text"`
	// Rules set the severity of Events, mark them as alerts or drop them;
	// the first rule that matches an Event decides. See rules.go.
	// Default: none.
	Rules []RuleConfig `mapstructure:"rules"`

	// Extract adds to each record what the receiver looks up about the
	// Event's involved object: the workloads that own it, and the labels
	// and annotations asked for. Needs `get` on the resources looked up
	// (see the README). Default: off (nothing is looked up).
	Extract ExtractConfig `mapstructure:"extract"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// CheckpointConfig names the ConfigMap that holds the resume point. The
// receiver creates it when it is absent.
type CheckpointConfig struct {
	// Namespace of the ConfigMap. Required.
	Namespace string `mapstructure:"namespace"`
	// Name of the ConfigMap. Required.
	Name string `mapstructure:"name"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// LeaderElectionConfig is the Lease the replicas compete for and its timing,
// as client-go's leaderelection package uses them.
type LeaderElectionConfig struct {
	// LeaseName is the name of the Lease (coordination.k8s.io/v1). Required.
	LeaseName string `mapstructure:"lease_name"`
	// LeaseNamespace is the namespace of the Lease. Required.
	LeaseNamespace string `mapstructure:"lease_namespace"`
	// LeaseDuration is how long the other replicas wait, after the last
	// renewal they saw, before they take the Lease over. Whole seconds, at
	// least 1s. Default: 15s.
	LeaseDuration time.Duration `mapstructure:"lease_duration"`
	// RenewDeadline is how long the leader keeps failing to renew before it
	// stops polling. Shorter than lease_duration. Default: 10s.
	RenewDeadline time.Duration `mapstructure:"renew_deadline"`
	// RetryPeriod is the time between two tries to acquire or renew the
	// Lease. Shorter than renew_deadline / 1.2 (client-go adds jitter).
	// Default: 2s.
	RetryPeriod time.Duration `mapstructure:"retry_period"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// ExtractConfig says what the receiver looks up about an Event's involved
// object, with the metadata API (one GET per object, cached), never with a
// list or an informer. The names follow contrib's k8sattributes processor.
type ExtractConfig struct {
	// Owners, when true, follows the involved object's controller owner
	// references up to its top-level workload (Pod -> ReplicaSet ->
	// Deployment, Pod -> Job -> CronJob, Pod -> StatefulSet, Pod ->
	// DaemonSet) and adds k8s.<kind>.name and k8s.<kind>.uid of each.
	// Default: false.
	Owners bool `mapstructure:"owners"`
	// Labels are the label keys whose values are added as
	// k8s.<kind>.label.<key>, read from the involved object and, with
	// owners, from its top-level owner. Default: none.
	Labels []string `mapstructure:"labels"`
	// Annotations are the annotation keys added as
	// k8s.<kind>.annotation.<key>, as labels are. Default: none.
	Annotations []string `mapstructure:"annotations"`
	// Cache bounds what the receiver keeps of the objects it looked up.
	Cache CacheConfig `mapstructure:"cache"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// CacheConfig bounds the cache of looked-up objects.
type CacheConfig struct {
	// Size is the most objects kept; the least recently used goes first.
	// Default: 20000 (about 16 MiB).
	Size int `mapstructure:"size"`
	// TTL is how long an answer (an object's owner and labels, or that it
	// does not exist) is used before the object is looked up again.
	// Default: 10m.
	TTL time.Duration `mapstructure:"ttl"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// enabled reports whether anything is looked up.
func (e *ExtractConfig) enabled() bool {
	return e.Owners || len(e.Labels) > 0 || len(e.Annotations) > 0
}

func createDefaultConfig() *Config {
	return &Config{
		AuthType:     AuthTypeServiceAccount,
		Mode:         ModePoll,
		Interval:     defaultInterval,
		PageSize:     defaultPageSize,
		BatchTimeout: defaultBatchTimeout,
		StartAt:      StartAtEnd,

		RequestTimeout: defaultRequestTimeout,

		SeverityText: SeverityTextEventType,
		Extract:      ExtractConfig{Cache: CacheConfig{Size: defaultCacheSize, TTL: defaultCacheTTL}},

		CheckpointInterval: defaultCheckpointInterval,
		LeaderElection: configoptional.Default(LeaderElectionConfig{
			LeaseDuration: defaultLeaseDuration,
			RenewDeadline: defaultRenewDeadline,
			RetryPeriod:   defaultRetryPeriod,
		}),
	}
}

// Validate checks the configuration without touching the network. Every
// message names the YAML key and what is allowed.
func (cfg *Config) Validate() error {
	var errs []error
	switch cfg.AuthType {
	case AuthTypeServiceAccount, AuthTypeKubeConfig, AuthTypeNone:
	default:
		errs = append(errs, fmt.Errorf("auth_type: %q is not supported; use one of %s, %s, %s",
			cfg.AuthType, AuthTypeServiceAccount, AuthTypeKubeConfig, AuthTypeNone))
	}
	switch cfg.Mode {
	case ModePoll, ModeWatch:
	default:
		errs = append(errs, fmt.Errorf("mode: %q is not supported; use %s or %s", cfg.Mode, ModePoll, ModeWatch))
	}
	if cfg.Context != "" && cfg.AuthType != AuthTypeKubeConfig {
		errs = append(errs, fmt.Errorf("context: is only used with auth_type %s, not %q", AuthTypeKubeConfig, cfg.AuthType))
	}
	errs = append(errs, validateNamespaces("namespaces", cfg.Namespaces)...)
	errs = append(errs, validateNamespaces("exclude_namespaces", cfg.ExcludeNamespaces)...)
	if len(cfg.Namespaces) > 0 && len(cfg.ExcludeNamespaces) > 0 {
		errs = append(errs, errors.New("exclude_namespaces: only applies when reading all namespaces; leave namespaces empty or drop exclude_namespaces"))
	}
	if cfg.FieldSelector != "" {
		if _, err := fields.ParseSelector(cfg.FieldSelector); err != nil {
			errs = append(errs, fmt.Errorf("field_selector: %q is not a field selector (terms such as type=Warning or reason!=Pulled, joined by commas): %w", cfg.FieldSelector, err))
		}
	}
	if cfg.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval: must be a positive duration such as 10s or 1m, got %v", cfg.Interval))
	}
	if cfg.PageSize <= 0 || cfg.PageSize > maxPageSize {
		errs = append(errs, fmt.Errorf("page_size: must be between 1 and %d, got %d", maxPageSize, cfg.PageSize))
	}
	if cfg.BatchTimeout <= 0 || cfg.BatchTimeout > maxBatchTimeout {
		errs = append(errs, fmt.Errorf("batch_timeout: must be a positive duration up to %v, such as 200ms, got %v", maxBatchTimeout, cfg.BatchTimeout))
	}
	if cfg.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("request_timeout: must be a positive duration such as 30s (the longest wait for the API server's answer to a request), got %v", cfg.RequestTimeout))
	}
	switch cfg.StartAt {
	case StartAtEnd, StartAtBeginning:
	default:
		errs = append(errs, fmt.Errorf("start_at: %q is not supported; use %s or %s", cfg.StartAt, StartAtEnd, StartAtBeginning))
	}
	errs = append(errs, cfg.validateResume()...)
	switch cfg.SeverityText {
	case SeverityTextEventType, SeverityTextLevel:
	default:
		errs = append(errs, fmt.Errorf("severity_text: %q is not supported; use %s or %s", cfg.SeverityText, SeverityTextEventType, SeverityTextLevel))
	}
	if _, err := compileRules(cfg.Rules); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, cfg.Extract.validate()...)
	return errors.Join(errs...)
}

// validate checks extract: label and annotation keys as Kubernetes accepts
// them, and the cache's bounds.
func (e *ExtractConfig) validate() []error {
	var errs []error
	for _, list := range []struct {
		key  string
		keys []string
	}{{"extract::labels", e.Labels}, {"extract::annotations", e.Annotations}} {
		seen := make(map[string]bool, len(list.keys))
		for i, k := range list.keys {
			if problems := validation.IsQualifiedName(k); len(problems) > 0 {
				errs = append(errs, fmt.Errorf("%s[%d]: %q is not a label or annotation key (an optional DNS prefix and a name, such as app.kubernetes.io/name or team): %s",
					list.key, i, k, strings.Join(problems, "; ")))
				continue
			}
			if seen[k] {
				errs = append(errs, fmt.Errorf("%s[%d]: %q is listed twice", list.key, i, k))
			}
			seen[k] = true
		}
	}
	if e.Cache.Size < 1 || e.Cache.Size > maxCacheSize {
		errs = append(errs, fmt.Errorf("extract::cache::size: must be between 1 and %d objects, got %d", maxCacheSize, e.Cache.Size))
	}
	if e.Cache.TTL < time.Second || e.Cache.TTL > maxCacheTTL {
		errs = append(errs, fmt.Errorf("extract::cache::ttl: must be a duration from 1s to %v, such as 10m, got %v", maxCacheTTL, e.Cache.TTL))
	}
	return errs
}

// validateResume checks storage, checkpoint, checkpoint_interval and
// leader_election.
func (cfg *Config) validateResume() []error {
	var errs []error
	checkpoint := cfg.Checkpoint.Get()
	if cfg.Storage != nil && checkpoint != nil {
		errs = append(errs, errors.New("storage and checkpoint: set only one place for the resume point"))
	}
	if checkpoint != nil {
		errs = append(errs, validateName("checkpoint::namespace", checkpoint.Namespace, validation.IsDNS1123Label)...)
		errs = append(errs, validateName("checkpoint::name", checkpoint.Name, validation.IsDNS1123Subdomain)...)
	}
	if cfg.CheckpointInterval <= 0 {
		errs = append(errs, fmt.Errorf("checkpoint_interval: must be a positive duration such as 5s, got %v", cfg.CheckpointInterval))
	}
	le := cfg.LeaderElection.Get()
	if le == nil {
		return errs
	}
	if cfg.Storage == nil && checkpoint == nil {
		errs = append(errs, errors.New("leader_election: needs checkpoint (or a storage extension that every replica reaches) so that the new leader resumes where the old one stopped"))
	}
	errs = append(errs, validateName("leader_election::lease_name", le.LeaseName, validation.IsDNS1123Subdomain)...)
	errs = append(errs, validateName("leader_election::lease_namespace", le.LeaseNamespace, validation.IsDNS1123Label)...)
	if le.LeaseDuration < time.Second {
		errs = append(errs, fmt.Errorf("leader_election::lease_duration: must be at least 1s (a Lease counts whole seconds), got %v", le.LeaseDuration))
	}
	if le.RenewDeadline <= 0 || le.RenewDeadline >= le.LeaseDuration {
		errs = append(errs, fmt.Errorf("leader_election::renew_deadline: must be positive and shorter than lease_duration (%v), got %v", le.LeaseDuration, le.RenewDeadline))
	}
	if le.RetryPeriod <= 0 || float64(le.RenewDeadline) <= leaderelection.JitterFactor*float64(le.RetryPeriod) {
		errs = append(errs, fmt.Errorf("leader_election::retry_period: must be positive and shorter than renew_deadline / %v (%v), got %v",
			leaderelection.JitterFactor, time.Duration(float64(le.RenewDeadline)/leaderelection.JitterFactor).Round(time.Millisecond), le.RetryPeriod))
	}
	return errs
}

// validateName checks a required Kubernetes object name with one of the
// apimachinery validators.
func validateName(key, name string, valid func(string) []string) []error {
	if name == "" {
		return []error{fmt.Errorf("%s: must be set", key)}
	}
	if problems := valid(name); len(problems) > 0 {
		return []error{fmt.Errorf("%s: %q is not a valid name: %s", key, name, strings.Join(problems, "; "))}
	}
	return nil
}

func validateNamespaces(key string, namespaces []string) []error {
	var errs []error
	seen := make(map[string]bool, len(namespaces))
	for i, ns := range namespaces {
		if problems := validation.IsDNS1123Label(ns); len(problems) > 0 {
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not a valid namespace name: %s", key, i, ns, strings.Join(problems, "; ")))
			continue
		}
		if seen[ns] {
			errs = append(errs, fmt.Errorf("%s[%d]: %q is listed twice", key, i, ns))
		}
		seen[ns] = true
	}
	return errs
}
