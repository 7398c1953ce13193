// Package ociimage writes a single-layer container image as a tarball,
// without a container engine: an OCI image layout (oci-layout, index.json,
// blobs/sha256/...) that also carries Docker's manifest.json, the same shape
// `docker save` writes since Docker 25. `ctr images import` and `docker load`
// both read it.
//
// The output is reproducible: the same files and config give the same bytes
// (every timestamp in the layer is the Unix epoch, owners are 0:0).
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Image is what goes into the tarball.
type Image struct {
	// Name is the image reference, normalized as containerd does
	// (docker.io/library/busybox:1.35); Docker's manifest.json gets the short
	// form (busybox:1.35). Required, with a tag.
	Name string

	// Files are the layer's contents. Parent directories are added as
	// needed (mode 0755).
	Files []File

	// Entrypoint, Cmd, User, Env and WorkingDir are the image config's
	// fields of the same names.
	Entrypoint []string
	Cmd        []string
	User       string
	Env        []string
	WorkingDir string

	// Labels are the image config's labels.
	Labels map[string]string

	// Arch is the image's architecture. Default: runtime.GOARCH.
	Arch string
}

// File is one entry of the layer.
type File struct {
	// Path inside the image, absolute (/bin/busybox).
	Path string
	// Mode is the permission bits; default 0644, or 0777 for a Link.
	Mode fs.FileMode
	// Data is the file's content; ignored for a Link.
	Data []byte
	// Link, when set, makes the entry a symbolic link to this target.
	Link string
}

// ReadFile returns a File at dst with the content and permission bits of
// the host file src.
func ReadFile(src, dst string) (File, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return File{}, err
	}
	st, err := os.Stat(src)
	if err != nil {
		return File{}, err
	}
	return File{Path: dst, Mode: st.Mode().Perm(), Data: data}, nil
}

// OCI and Docker media types.
const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type imageConfig struct {
	Created      string    `json:"created"`
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Config       runConfig `json:"config"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		Created   string `json:"created"`
		CreatedBy string `json:"created_by"`
	} `json:"history"`
}

type runConfig struct {
	User       string            `json:"User,omitempty"`
	Env        []string          `json:"Env,omitempty"`
	Entrypoint []string          `json:"Entrypoint,omitempty"`
	Cmd        []string          `json:"Cmd,omitempty"`
	WorkingDir string            `json:"WorkingDir,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// epoch is the time of every entry and of the config: reproducible output.
var epoch = time.Unix(0, 0).UTC()

// Write writes img as an image tarball to w.
func Write(w io.Writer, img Image) error {
	repo, tag, ok := splitTag(img.Name)
	if !ok {
		return fmt.Errorf("write image: name %q needs a tag (name:tag)", img.Name)
	}
	layerTar, err := layer(img.Files)
	if err != nil {
		return fmt.Errorf("write image %s: layer: %w", img.Name, err)
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if _, err = zw.Write(layerTar); err != nil {
		return err
	}
	if err = zw.Close(); err != nil {
		return err
	}

	arch := img.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	cfg := imageConfig{
		Created:      epoch.Format(time.RFC3339),
		Architecture: arch,
		OS:           "linux",
		Config: runConfig{
			User: img.User, Env: img.Env, Entrypoint: img.Entrypoint, Cmd: img.Cmd,
			WorkingDir: img.WorkingDir, Labels: img.Labels,
		},
	}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{digest(layerTar)}
	cfg.History = append(cfg.History, struct {
		Created   string `json:"created"`
		CreatedBy string `json:"created_by"`
	}{cfg.Created, "ociimage"})
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	layerDesc := descriptor{MediaType: mediaTypeLayer, Digest: digest(gz.Bytes()), Size: int64(gz.Len())}
	cfgDesc := descriptor{MediaType: mediaTypeConfig, Digest: digest(cfgJSON), Size: int64(len(cfgJSON))}
	manJSON, err := json.Marshal(manifest{SchemaVersion: 2, MediaType: mediaTypeManifest, Config: cfgDesc, Layers: []descriptor{layerDesc}})
	if err != nil {
		return err
	}
	manDesc := descriptor{
		MediaType: mediaTypeManifest, Digest: digest(manJSON), Size: int64(len(manJSON)),
		Annotations: map[string]string{
			// containerd names the image after this one.
			"io.containerd.image.name": repo + ":" + tag,
			// The OCI layout's own name for it.
			"org.opencontainers.image.ref.name": tag,
		},
	}
	idxJSON, err := json.Marshal(index{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []descriptor{manDesc}})
	if err != nil {
		return err
	}
	dockerJSON, err := json.Marshal([]dockerManifest{{
		Config:   blobPath(cfgDesc.Digest),
		RepoTags: []string{shortName(repo) + ":" + tag},
		Layers:   []string{blobPath(layerDesc.Digest)},
	}})
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	entries := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", idxJSON},
		{"manifest.json", dockerJSON},
		{blobPath(cfgDesc.Digest), cfgJSON},
		{blobPath(layerDesc.Digest), gz.Bytes()},
		{blobPath(manDesc.Digest), manJSON},
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	for _, e := range entries {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write image %s: %w", img.Name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return fmt.Errorf("write image %s: %w", img.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write image %s: %w", img.Name, err)
	}
	return nil
}

// WriteFile writes img to the file at path, through a temporary file so
// that a reader never sees half an image.
func WriteFile(path string, img Image) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = Write(f, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return os.Rename(tmp, path)
}

// layer is the uncompressed layer tar: parent directories first, then the
// files in path order.
func layer(files []File) ([]byte, error) {
	seen := map[string]bool{}
	var dirs []string
	var addParents func(p string)
	addParents = func(p string) {
		d := path.Dir(p)
		if d == "/" || d == "." || seen[d] {
			return
		}
		addParents(d)
		seen[d] = true
		dirs = append(dirs, d)
	}
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	for i, f := range sorted {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return nil, fmt.Errorf("file path %q: must be absolute and clean", f.Path)
		}
		if i > 0 && sorted[i-1].Path == f.Path {
			return nil, fmt.Errorf("file path %q: given twice", f.Path)
		}
		addParents(f.Path)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d[1:] + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, f := range sorted {
		hdr := &tar.Header{Name: f.Path[1:], ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case f.Link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, f.Link, 0o777
		default:
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, int64(len(f.Data)), 0o644
			if f.Mode != 0 {
				hdr.Mode = int64(f.Mode.Perm())
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobPath(d string) string { return "blobs/sha256/" + strings.TrimPrefix(d, "sha256:") }

// splitTag splits name:tag; a colon in the registry's host:port is not a tag.
func splitTag(name string) (repo, tag string, ok bool) {
	i := strings.LastIndex(name, ":")
	if i < 0 || strings.Contains(name[i:], "/") || i == len(name)-1 {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}

// shortName is the name as Docker shows it: without docker.io/ and
// library/.
func shortName(repo string) string {
	repo = strings.TrimPrefix(repo, "docker.io/")
	return strings.TrimPrefix(repo, "library/")
}
