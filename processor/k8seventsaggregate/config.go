package k8seventsaggregate // import "github.com/k8sevents/otelcol-k8sevents/processor/k8seventsaggregate"

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of the fields below.
const (
	defaultWindow  = time.Minute
	defaultMaxKeys = 10000
)

// defaultKeys make Events similar when they share the involved object's
// namespace and kind and the reason: the names the k8sevents receiver uses.
var defaultKeys = []string{"k8s.namespace.name", "k8s.object.kind", "k8s.event.reason"}

// Config is what users set under `processors: k8sevents_aggregate:`.
type Config struct {
	// Window is how long, from the first record of a key, the records of
	// that key are counted instead of passed; at its end a summary record
	// follows. Default: 1m.
	Window time.Duration `mapstructure:"window"`
	// Keys are the attributes whose values make records similar, looked up
	// on the log record and then on its resource. A missing attribute counts
	// as the empty value; a record that has none of them passes untouched.
	// Default: [k8s.namespace.name, k8s.object.kind, k8s.event.reason].
	Keys []string `mapstructure:"keys"`
	// MaxKeys bounds the keys with an open window, and so the memory held.
	// While it is reached, records of further keys pass. Default: 10000.
	MaxKeys int `mapstructure:"max_keys"`

	// prevent unkeyed literal initialization
	_ struct{}
}

func createDefaultConfig() *Config {
	return &Config{
		Window:  defaultWindow,
		Keys:    append([]string(nil), defaultKeys...),
		MaxKeys: defaultMaxKeys,
	}
}

// Validate checks the configuration. Every message names the YAML key and
// what is allowed.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.Window <= 0 {
		errs = append(errs, fmt.Errorf("window: must be a positive duration such as 30s or 1m, got %v", cfg.Window))
	}
	if len(cfg.Keys) == 0 {
		errs = append(errs, errors.New("keys: must name at least one attribute, such as k8s.event.reason"))
	}
	seen := make(map[string]int, len(cfg.Keys))
	for i, k := range cfg.Keys {
		if k == "" {
			errs = append(errs, fmt.Errorf("keys[%d]: must not be empty", i))
			continue
		}
		if j, ok := seen[k]; ok {
			errs = append(errs, fmt.Errorf("keys[%d]: %q is already keys[%d]", i, k, j))
		}
		seen[k] = i
	}
	if cfg.MaxKeys < 1 {
		errs = append(errs, fmt.Errorf("max_keys: must be at least 1, got %d", cfg.MaxKeys))
	}
	return errors.Join(errs...)
}
