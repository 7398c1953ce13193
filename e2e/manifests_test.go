package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// kustomize builds a kustomization (relative to the module root) with the
// kubectl that `make node` builds, as `kubectl apply -k` would, and decodes
// the objects.
func kustomize(t *testing.T, dir string) []runtime.Object {
	t.Helper()
	bin, err := kubetest.FindBinDir()
	if err != nil {
		t.Skipf("no kubectl: %v", err)
	}
	kubectl := filepath.Join(bin, "kubectl")
	if _, err = os.Stat(kubectl); err != nil {
		t.Skipf("no kubectl in %s: run `make node`", bin)
	}
	root := moduleRoot(t)
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v", dir, err)
	}
	var objs []runtime.Object
	for doc := range strings.SplitSeq(string(out), "\n---\n") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("decode %s: %v\n%s", dir, err, doc)
		}
		objs = append(objs, obj)
	}
	return objs
}

func objectsOf[T runtime.Object](objs []runtime.Object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func only[T runtime.Object](t *testing.T, objs []runtime.Object) T {
	t.Helper()
	l := objectsOf[T](objs)
	if len(l) != 1 {
		var zero T
		t.Fatalf("want one %T, got %d", zero, len(l))
	}
	return l[0]
}

// readmeRole is the checkpoint and leader-election Role that the
// receiver's README documents (its RBAC section).
func readmeRole(t *testing.T) *rbacv1.Role {
	t.Helper()
	return readmeRBAC(t, "Role", "").(*rbacv1.Role)
}

// readmeOwnersRules are the rules of the ClusterRole that the receiver's
// README documents for extract::owners (its RBAC section): reading Events
// (list, and watch for mode: watch; never get, the receiver reads no Event
// by name) and get on pods, replicasets and jobs.
func readmeOwnersRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	return readmeRBAC(t, "ClusterRole", "# extract::owners").(*rbacv1.ClusterRole).Rules
}

// readmeRBAC decodes the first yaml block of the receiver's README that
// holds an object of kind and the text mark.
func readmeRBAC(t *testing.T, kind, mark string) runtime.Object {
	t.Helper()
	const readme = "receiver/k8sevents/README.md"
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(readRoot(t, readme)), -1) {
		if !strings.Contains(m[1], "\nkind: "+kind+"\n") || !strings.Contains(m[1], mark) {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(m[1]), nil, nil)
		if err != nil {
			t.Fatalf("decode the %s %s %s: %v", readme, kind, mark, err)
		}
		return obj
	}
	t.Fatalf("no %s %s in %s", kind, mark, readme)
	return nil
}

// TestDeployManifests checks deploy/ and deploy/namespaced/ as kubectl
// builds them: least privilege, the Role the receiver's README documents,
// two replicas with the security settings and probes the README promises,
// and the image that `make image` names.
func TestDeployManifests(t *testing.T) {
	t.Parallel()
	for _, variant := range []string{"deploy", "deploy/namespaced"} {
		t.Run(variant, func(t *testing.T) {
			objs := kustomize(t, variant)
			checkDeployment(t, only[*appsv1.Deployment](t, objs))
			only[*corev1.Namespace](t, objs)
			only[*corev1.ServiceAccount](t, objs)
			cm := only[*corev1.ConfigMap](t, objs)
			if !strings.Contains(cm.Data["config.yaml"], "auth_type: serviceAccount") {
				t.Errorf("config.yaml does not use the pod's ServiceAccount")
			}

			if !strings.Contains(cm.Data["config.yaml"], "extract:\n      owners: true") {
				t.Errorf("config.yaml does not turn extract::owners on, which the RBAC below grants")
			}
			// deploy/ reads Events and, for extract: owners, gets Pods,
			// ReplicaSets and Jobs: the README's rules, nothing more.
			readRules := readmeOwnersRules(t)
			roles := objectsOf[*rbacv1.Role](objs)
			clusterRoles := objectsOf[*rbacv1.ClusterRole](objs)
			var own *rbacv1.Role
			for _, r := range roles {
				switch r.Namespace {
				case deployNamespace:
					own = r
				case "my-app":
					if variant != "deploy/namespaced" || !slices.EqualFunc(r.Rules, readRules, ruleEqual) {
						t.Errorf("Role %s/%s rules %v, want only %v", r.Namespace, r.Name, r.Rules, readRules)
					}
				default:
					t.Errorf("unexpected Role %s/%s", r.Namespace, r.Name)
				}
			}
			if own == nil || !slices.EqualFunc(own.Rules, readmeRole(t).Rules, ruleEqual) {
				t.Errorf("the Role in %s is not the one of receiver/k8sevents/README.md#rbac: %v", deployNamespace, own)
			}
			switch variant {
			case "deploy":
				if len(clusterRoles) != 1 || !slices.EqualFunc(clusterRoles[0].Rules, readRules, ruleEqual) {
					t.Errorf("ClusterRoles %v, want one with only %v", clusterRoles, readRules)
				}
			case "deploy/namespaced":
				if len(clusterRoles)+len(objectsOf[*rbacv1.ClusterRoleBinding](objs)) > 0 {
					t.Errorf("the namespaced variant has cluster-wide RBAC")
				}
				if !strings.Contains(cm.Data["namespaces.yaml"], "namespaces: [my-app]") {
					t.Errorf("namespaces.yaml does not read my-app: %q", cm.Data["namespaces.yaml"])
				}
			}
		})
	}
}

func ruleEqual(a, b rbacv1.PolicyRule) bool {
	return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) &&
		slices.Equal(a.Verbs, b.Verbs) && slices.Equal(a.ResourceNames, b.ResourceNames)
}

func checkDeployment(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	spec := d.Spec.Template.Spec
	if spec.ServiceAccountName != deployName || spec.HostNetwork {
		t.Errorf("serviceAccountName %q, hostNetwork %v", spec.ServiceAccountName, spec.HostNetwork)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext %+v: want runAsNonRoot with a numeric non-root user", psc)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if want := "otelcol-k8sevents:" + distVersion(t); c.Image != want {
		t.Errorf("image %q, want %q (builder-config.yaml's dist.version, as `make image` names it)", c.Image, want)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext %+v: want a read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.String() != "health" {
			t.Errorf("%s probe %+v: want an HTTP GET on the health_check port", name, p)
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("no %s limit", r)
		}
	}
}

// distVersion is builder-config.yaml's dist.version.
func distVersion(t *testing.T) string {
	t.Helper()
	b := readRoot(t, "builder-config.yaml")
	m := regexp.MustCompile(`(?m)^  version: *(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no dist.version in builder-config.yaml")
	}
	return string(m[1])
}

// TestDeployConfigValidates runs the collector's validate command on the
// configuration files of deploy/ and deploy/namespaced/, with the
// environment the Deployment gives them.
func TestDeployConfigValidates(t *testing.T) {
	t.Parallel()
	bin := collectortest.Binary(t)
	root := moduleRoot(t)
	for name, files := range map[string][]string{
		"deploy":            {"deploy/base/config.yaml"},
		"deploy/namespaced": {"deploy/base/config.yaml", "deploy/namespaced/namespaces.yaml"},
	} {
		t.Run(name, func(t *testing.T) {
			args := []string{"validate"}
			for _, f := range files {
				args = append(args, "--config", filepath.Join(root, f))
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), "POD_IP=10.1.2.3", "POD_NAMESPACE="+deployNamespace, "POD_NAME=otelcol-k8sevents-abc",
				"OTLP_ENDPOINT=http://gateway:4318", "CLUSTER_NAME=")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("otelcol-k8sevents %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

// TestDockerfileMatchesImage: the Dockerfile, which no test can build
// (there is no Docker engine here), describes the image that `make image`
// writes: the same files, entrypoint, arguments and user.
func TestDockerfileMatchesImage(t *testing.T) {
	t.Parallel()
	image := testbin.Find(t, EnvImage, "_build/otelcol-k8sevents-image.tar", "run `make image`")
	root := moduleRoot(t)
	cfg, files := readImage(t, image)

	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var entrypoint, cmd []string
	var user string
	var copied []string
	stage := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		instr, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch instr {
		case "FROM":
			stage++
		case "ENTRYPOINT":
			mustJSON(t, arg, &entrypoint)
		case "CMD":
			mustJSON(t, arg, &cmd)
		case "USER":
			user = arg
		case "COPY":
			if f := strings.Fields(arg); stage == 2 {
				copied = append(copied, f[len(f)-1])
			}
		}
	}
	slices.Sort(copied)
	if !slices.Equal(entrypoint, cfg.Entrypoint) || !slices.Equal(cmd, cfg.Cmd) || user != cfg.User {
		t.Errorf("Dockerfile: ENTRYPOINT %q CMD %q USER %q; the image: %q %q %q", entrypoint, cmd, user, cfg.Entrypoint, cfg.Cmd, cfg.User)
	}
	if !slices.Equal(copied, files) {
		t.Errorf("Dockerfile copies %v; the image holds %v", copied, files)
	}
}

type imageRunConfig struct {
	Entrypoint []string
	Cmd        []string
	User       string
}

// readImage reads an image tarball's run configuration and the regular
// files of its layer, through index.json as containerd does.
func readImage(t *testing.T, path string) (imageRunConfig, []string) {
	t.Helper()
	blobs := map[string][]byte{}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }() // read-only
	tr := tar.NewReader(f)
	for {
		h, next := tr.Next()
		if errors.Is(next, io.EOF) {
			break
		}
		if next != nil {
			t.Fatal(next)
		}
		if blobs[h.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	blob := func(digest string) []byte { return blobs["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")] }
	var idx struct{ Manifests []struct{ Digest string } }
	mustJSON(t, string(blobs["index.json"]), &idx)
	var man struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	mustJSON(t, string(blob(idx.Manifests[0].Digest)), &man)
	var cfg struct{ Config imageRunConfig }
	mustJSON(t, string(blob(man.Config.Digest)), &cfg)
	zr, err := gzip.NewReader(bytes.NewReader(blob(man.Layers[0].Digest)))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	lr := tar.NewReader(zr)
	for {
		h, err := lr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			files = append(files, "/"+h.Name)
		}
	}
	slices.Sort(files)
	return cfg.Config, files
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}
