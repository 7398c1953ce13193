package metadata

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const (
	modulePath = "github.com/k8sevents/otelcol-k8sevents"
	importPath = modulePath + "/receiver/k8sevents"
)

// repoRoot is the module root, seen from this package's directory.
var repoRoot = filepath.Join("..", "..", "..", "..")

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, rel))
	require.NoError(t, err)
	return string(data)
}

// TestVersionIsPublished: Version is written in code once; every place a user
// reads the version from shows the same one, so a release that sets Version
// fails here until the manifest, the changelog and the READMEs follow.
func TestVersionIsPublished(t *testing.T) {
	tag := "v" + Version
	require.Regexp(t, `^\d+\.\d+\.\d+$`, Version, "a semantic version, without the tag's v")

	t.Run("builder-config.yaml", func(t *testing.T) {
		var manifest struct {
			Dist struct {
				Version string `yaml:"version"`
			} `yaml:"dist"`
			Receivers []struct {
				GoMod  string `yaml:"gomod"`
				Import string `yaml:"import"`
			} `yaml:"receivers"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(readRepoFile(t, "builder-config.yaml")), &manifest))
		assert.Equal(t, Version, manifest.Dist.Version, "dist.version, which otelcol-k8sevents --version prints")
		var gomods []string
		for _, r := range manifest.Receivers {
			if r.Import == importPath {
				gomods = append(gomods, strings.Join(strings.Fields(r.GoMod), " "))
			}
		}
		assert.Equal(t, []string{modulePath + " " + tag}, gomods, "the gomod of the receiver %s", importPath)
	})

	t.Run("Chart.yaml", func(t *testing.T) {
		// The chart is released with the collector: its version, and the
		// appVersion that is the default image tag.
		var chart struct {
			Version    string `yaml:"version"`
			AppVersion string `yaml:"appVersion"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(readRepoFile(t, filepath.Join("charts", "otelcol-k8sevents", "Chart.yaml"))), &chart))
		assert.Equal(t, Version, chart.AppVersion, "appVersion, the default image tag")
		assert.Equal(t, Version, chart.Version, "the chart's version")
	})

	t.Run("CHANGELOG.md", func(t *testing.T) {
		var headings []string
		for line := range strings.Lines(readRepoFile(t, "CHANGELOG.md")) {
			if h, ok := strings.CutPrefix(strings.TrimSpace(line), "## "); ok {
				headings = append(headings, h)
			}
		}
		require.GreaterOrEqual(t, len(headings), 2, "an Unreleased section, then one per release")
		assert.Equal(t, "Unreleased", headings[0], "the first section collects what is not released yet")
		assert.Equal(t, tag, headings[1], "the newest release")
	})

	t.Run("receiver README status table", func(t *testing.T) {
		rows := map[string]string{}
		for line := range strings.Lines(readRepoFile(t, filepath.Join("receiver", "k8sevents", "README.md"))) {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "## ") {
				break
			}
			cells := strings.Split(strings.Trim(line, "|"), "|")
			if strings.HasPrefix(line, "|") && len(cells) == 2 {
				rows[strings.TrimSpace(cells[0])] = strings.TrimSpace(cells[1])
			}
		}
		assert.Equal(t, "["+strings.ToLower(LogsStability.String())+"]: logs", rows["Stability"])
		assert.True(t, strings.HasPrefix(rows["Version"], Version+":"), "Version row %q starts with %s:", rows["Version"], Version)
		assert.Contains(t, rows["Version"], "`"+tag+"`")
	})

	t.Run("README.md", func(t *testing.T) {
		readme := readRepoFile(t, "README.md")
		// Every version of the module the README shows (ocb manifests, the
		// component list) is this one.
		versions := regexp.MustCompile(regexp.QuoteMeta(modulePath)+` (v\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)`).FindAllStringSubmatch(readme, -1)
		require.NotEmpty(t, versions, "the README shows the module with its version")
		for _, v := range versions {
			assert.Equal(t, tag, v[1], "in %q", v[0])
		}
		_, build, ok := strings.Cut(readme, "## Build your own distribution")
		require.True(t, ok, "a section \"Build your own distribution\"")
		build, _, _ = strings.Cut(build, "\n## ")
		for _, want := range []string{
			"gomod: " + modulePath + " " + tag,
			"release " + tag,
			"otelcol-k8sevents version " + Version,
			UserAgentProduct + "/" + Version,
		} {
			assert.True(t, strings.Contains(build, want), "README.md's \"Build your own distribution\" lacks %q", want)
		}
	})
}
