// Command mkimage writes a single-layer container image tarball without a
// container engine (see internal/ociimage): `make image` packs the collector
// with it.
//
//	go run ./internal/cmd/mkimage -o image.tar -name docker.io/library/otelcol-k8sevents:0.1.0 \
//	    -file _build/otelcol-k8sevents:/otelcol-k8sevents -static /otelcol-k8sevents \
//	    -entrypoint '["/otelcol-k8sevents"]' -user 10001:10001
//
// Load the result with `ctr -n k8s.io images import image.tar` (containerd)
// or `docker load -i image.tar`.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/k8sevents/otelcol-k8sevents/internal/ociimage"
)

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var files, links, labels, env, static listFlag
	out := flag.String("o", "", "output tarball (required)")
	name := flag.String("name", "", "image reference with a tag, e.g. docker.io/library/otelcol-k8sevents:0.1.0 (required)")
	flag.Var(&files, "file", "HOST:IMAGE: put the host file HOST at the absolute path IMAGE, keeping its mode (repeatable)")
	flag.Var(&links, "link", "IMAGE=TARGET: a symbolic link at IMAGE pointing at TARGET (repeatable)")
	flag.Var(&static, "static", "IMAGE: fail unless the file at this image path is a statically linked ELF program (repeatable)")
	flag.Var(&labels, "label", "KEY=VALUE: an image label (repeatable)")
	flag.Var(&env, "env", "KEY=VALUE: an environment variable of the image (repeatable)")
	entrypoint := flag.String("entrypoint", "", `the entrypoint as a JSON array, e.g. '["/otelcol-k8sevents"]'`)
	cmd := flag.String("cmd", "", `the default arguments as a JSON array, e.g. '["--config", "/etc/otelcol/config.yaml"]'`)
	user := flag.String("user", "", "the user (and group) the image runs as, e.g. 10001:10001")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("mkimage: ")
	if *out == "" || *name == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	img, err := image(*name, files, links, labels, env, static, *entrypoint, *cmd, *user)
	if err == nil {
		err = ociimage.WriteFile(*out, img)
	}
	if err != nil {
		log.Fatal(err)
	}
	st, err := os.Stat(*out)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s (%s, %.1f MB)", *out, *name, float64(st.Size())/1e6)
}

func image(name string, files, links, labels, env, static listFlag, entrypoint, cmd, user string) (ociimage.Image, error) {
	img := ociimage.Image{Name: name, User: user, Env: env}
	hostOf := map[string]string{}
	for _, f := range files {
		host, dst, ok := strings.Cut(f, ":")
		if !ok {
			return img, fmt.Errorf("-file %q: want HOST:IMAGE", f)
		}
		file, err := ociimage.ReadFile(host, dst)
		if err != nil {
			return img, fmt.Errorf("-file %q: %w", f, err)
		}
		img.Files = append(img.Files, file)
		hostOf[dst] = host
	}
	for _, l := range links {
		dst, target, ok := strings.Cut(l, "=")
		if !ok {
			return img, fmt.Errorf("-link %q: want IMAGE=TARGET", l)
		}
		img.Files = append(img.Files, ociimage.File{Path: dst, Link: target})
	}
	for _, s := range static {
		host, ok := hostOf[s]
		if !ok {
			return img, fmt.Errorf("-static %q: no -file puts a file there", s)
		}
		if err := ociimage.CheckStatic(host); err != nil {
			return img, fmt.Errorf("-static %q: %w", s, err)
		}
	}
	if len(labels) > 0 {
		img.Labels = map[string]string{}
		for _, l := range labels {
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				return img, fmt.Errorf("-label %q: want KEY=VALUE", l)
			}
			img.Labels[k] = v
		}
	}
	var err error
	if img.Entrypoint, err = jsonList("-entrypoint", entrypoint); err != nil {
		return img, err
	}
	if img.Cmd, err = jsonList("-cmd", cmd); err != nil {
		return img, err
	}
	return img, nil
}

func jsonList(flagName, v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal([]byte(v), &l); err != nil {
		return nil, errors.Join(fmt.Errorf("%s %q: want a JSON array of strings", flagName, v), err)
	}
	return l, nil
}
