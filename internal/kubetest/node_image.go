package kubetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/k8sevents/otelcol-k8sevents/internal/ociimage"
)

// BusyboxImage is the image every node has: the machine's static busybox
// with links for its common applets. Its entrypoint sleeps for ever, which
// makes it the node's sandbox ("pause") image too. Nothing can be pulled
// here: give Pods imagePullPolicy Never.
const BusyboxImage = "kubetest.local/busybox:1"

// busyboxPath is where Debian's busybox-static installs the program.
const busyboxPath = "/bin/busybox"

// busyboxApplets get a link to /bin/busybox in the image.
var busyboxApplets = []string{
	"cat", "date", "dd", "echo", "env", "false", "grep", "head", "hostname", "id", "kill",
	"ls", "mkdir", "ps", "rm", "sh", "sleep", "tail", "touch", "true", "wc", "yes",
}

// writeBusyboxImage writes BusyboxImage as an image tarball to path.
func writeBusyboxImage(path string) error {
	bb, err := ociimage.ReadFile(busyboxPath, "/bin/busybox")
	if err != nil {
		return err
	}
	img := ociimage.Image{
		Name:       BusyboxImage,
		Files:      []ociimage.File{bb},
		Entrypoint: []string{"/bin/sleep", "2147483647"},
		Env:        []string{"PATH=/bin"},
	}
	for _, a := range busyboxApplets {
		img.Files = append(img.Files, ociimage.File{Path: "/bin/" + a, Link: "busybox"})
	}
	return ociimage.WriteFile(path, img)
}

// ImportImage loads an image tarball (OCI layout or `docker save` format,
// such as `make image` writes) into the node's containerd, where the
// kubelet finds it. Pods that use it need imagePullPolicy Never (or
// IfNotPresent): nothing can be pulled.
func (n *Node) ImportImage(ctx context.Context, tarball string) error {
	out, err := n.ctr(ctx, "images", "import", tarball)
	if err != nil {
		return fmt.Errorf("import image %s: %w", tarball, err)
	}
	n.logf("imported %s: %s", filepath.Base(tarball), strings.TrimSpace(out))
	return nil
}

// ctr runs containerd's client against the node's containerd, in the
// namespace the kubelet uses.
func (n *Node) ctr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", n.rec.ContainerdAddress, "--namespace", "k8s.io"}, args...)...)
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
