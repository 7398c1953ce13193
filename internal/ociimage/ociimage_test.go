package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readTar returns the regular files of a tarball by name, and the order
// of all entries.
func readTar(t *testing.T, data []byte) (map[string][]byte, []*tar.Header) {
	t.Helper()
	files := map[string][]byte{}
	var hdrs []*tar.Header
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, hdrs
		}
		require.NoError(t, err)
		hdrs = append(hdrs, h)
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			files[h.Name] = b
		}
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func testImage() Image {
	return Image{
		Name: "docker.io/library/demo:1.2.3",
		Files: []File{
			{Path: "/bin/tool", Mode: 0o755, Data: []byte("#!/bin/true\n")},
			{Path: "/bin/alias", Link: "tool"},
			{Path: "/etc/ssl/certs/ca.crt", Data: []byte("cert")},
		},
		Entrypoint: []string{"/bin/tool"},
		Cmd:        []string{"--config", "/etc/x.yaml"},
		User:       "10001:10001",
		Labels:     map[string]string{"org.opencontainers.image.version": "1.2.3"},
		Arch:       "amd64",
	}
}

// TestWrite reads an image back as containerd and Docker would: from
// index.json to the manifest, config and layer, each by its digest; and
// from manifest.json.
func TestWrite(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, testImage()))
	files, _ := readTar(t, buf.Bytes())
	blob := func(digest string) []byte {
		t.Helper()
		b, ok := files["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
		require.True(t, ok, "blob %s missing", digest)
		require.Equal(t, digest, sha(b), "blob content does not match its digest")
		return b
	}

	assert.JSONEq(t, `{"imageLayoutVersion":"1.0.0"}`, string(files["oci-layout"]))
	var idx index
	require.NoError(t, json.Unmarshal(files["index.json"], &idx))
	require.Len(t, idx.Manifests, 1)
	assert.Equal(t, "docker.io/library/demo:1.2.3", idx.Manifests[0].Annotations["io.containerd.image.name"])
	assert.Equal(t, "1.2.3", idx.Manifests[0].Annotations["org.opencontainers.image.ref.name"])

	var man manifest
	require.NoError(t, json.Unmarshal(blob(idx.Manifests[0].Digest), &man))
	require.Len(t, man.Layers, 1)
	var cfg imageConfig
	require.NoError(t, json.Unmarshal(blob(man.Config.Digest), &cfg))
	assert.Equal(t, []string{"/bin/tool"}, cfg.Config.Entrypoint)
	assert.Equal(t, []string{"--config", "/etc/x.yaml"}, cfg.Config.Cmd)
	assert.Equal(t, "10001:10001", cfg.Config.User)
	assert.Equal(t, "amd64", cfg.Architecture)
	assert.Equal(t, "linux", cfg.OS)

	zr, err := gzip.NewReader(bytes.NewReader(blob(man.Layers[0].Digest)))
	require.NoError(t, err)
	layer, err := io.ReadAll(zr)
	require.NoError(t, err)
	assert.Equal(t, []string{sha(layer)}, cfg.RootFS.DiffIDs, "diff_id is the digest of the uncompressed layer")

	content, hdrs := readTar(t, layer)
	var names []string
	for _, h := range hdrs {
		names = append(names, h.Name)
		assert.Zero(t, h.Uid)
		assert.Zero(t, h.ModTime.Unix())
	}
	assert.Equal(t, []string{"bin/", "etc/", "etc/ssl/", "etc/ssl/certs/", "bin/alias", "bin/tool", "etc/ssl/certs/ca.crt"}, names)
	assert.Equal(t, "#!/bin/true\n", string(content["bin/tool"]))
	assert.Equal(t, int64(0o755), hdrs[5].Mode)
	assert.Equal(t, "tool", hdrs[4].Linkname)
	assert.Equal(t, int64(0o644), hdrs[6].Mode, "default mode")

	var docker []dockerManifest
	require.NoError(t, json.Unmarshal(files["manifest.json"], &docker))
	require.Len(t, docker, 1)
	assert.Equal(t, []string{"demo:1.2.3"}, docker[0].RepoTags)
	assert.Equal(t, "blobs/sha256/"+strings.TrimPrefix(man.Config.Digest, "sha256:"), docker[0].Config)
}

func TestWriteIsReproducible(t *testing.T) {
	var a, b bytes.Buffer
	require.NoError(t, Write(&a, testImage()))
	img := testImage()
	img.Files[0], img.Files[2] = img.Files[2], img.Files[0] // order given does not matter
	require.NoError(t, Write(&b, img))
	assert.Equal(t, sha(a.Bytes()), sha(b.Bytes()))
}

func TestWriteRejects(t *testing.T) {
	for name, img := range map[string]Image{
		"no tag":        {Name: "docker.io/library/demo"},
		"port, no tag":  {Name: "registry:5000/demo"},
		"relative path": {Name: "demo:1", Files: []File{{Path: "bin/tool"}}},
		"unclean path":  {Name: "demo:1", Files: []File{{Path: "/bin/../tool"}}},
		"twice":         {Name: "demo:1", Files: []File{{Path: "/a"}, {Path: "/a"}}},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Error(t, Write(io.Discard, img))
		})
	}
}

func TestCheckStatic(t *testing.T) {
	// The test binary itself is linked dynamically when cgo is on (-race
	// needs it), statically otherwise: compare with the toolchain's answer.
	self, err := os.Executable()
	require.NoError(t, err)
	out, err := exec.Command("go", "version", "-m", self).Output()
	require.NoError(t, err)
	cgo := strings.Contains(string(out), "CGO_ENABLED=1")
	err = CheckStatic(self)
	if cgo {
		assert.ErrorIs(t, err, ErrNotStatic)
	} else {
		assert.NoError(t, err)
	}
	assert.Error(t, CheckStatic("ociimage_test.go"), "not an ELF file")
}
