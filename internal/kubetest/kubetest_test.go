package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// eventually polls cond every half second until it returns true, an error,
// or the (generous) deadline passes. It is a wait, not a timing assertion.
func eventually(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 3*time.Minute, true, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func TestFindBinDirMissing(t *testing.T) {
	t.Setenv(EnvBinDir, t.TempDir())
	_, err := FindBinDir()
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("FindBinDir with an empty %s: got %v, want ErrNoBinaries", EnvBinDir, err)
	}
}

func TestStartWithoutControllers(t *testing.T) {
	begin := time.Now()
	cp := StartForTest(t, Options{})
	t.Logf("etcd + kube-apiserver ready after %v", time.Since(begin).Round(time.Millisecond))

	if cp.Running(KubeControllerManager) || cp.Running(KubeScheduler) {
		t.Fatal("controllers running although Options.Controllers is false")
	}
	// PID names the running binary, and 0 for a component that does not run.
	for _, name := range []string{Etcd, KubeAPIServer} {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cp.PID(name)))
		if err != nil || !strings.Contains(string(cmdline), name) {
			t.Errorf("PID(%s) = %d, whose command line is %q (%v)", name, cp.PID(name), cmdline, err)
		}
	}
	if pid := cp.PID(KubeControllerManager); pid != 0 {
		t.Errorf("PID(%s) = %d, want 0: it is not running", KubeControllerManager, pid)
	}
	// The admin kubeconfig file works on its own.
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Namespaces().Get(t.Context(), "kube-system", metav1.GetOptions{}); err != nil {
		t.Fatalf("get namespace kube-system with the admin kubeconfig: %v", err)
	}

	// Stop ends every process and removes the temporary directory.
	cp.mu.Lock()
	var pids []int
	for _, p := range cp.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	cp.mu.Unlock()
	dir := cp.Dir()
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d still exists after Stop (kill -0: %v)", pid, err)
		}
	}
	if pid := cp.PID(KubeAPIServer); pid != 0 {
		t.Errorf("PID(%s) = %d after Stop, want 0", KubeAPIServer, pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("work dir %s still there after Stop: %v", dir, err)
	}
}

func TestControlPlane(t *testing.T) {
	begin := time.Now()
	cp := StartForTest(t, Options{Controllers: true})
	t.Logf("control plane with controllers ready after %v", time.Since(begin).Round(time.Millisecond))
	c := cp.Client()

	t.Run("ScalingReplicaSetEvent", func(t *testing.T) {
		ctx := t.Context()
		ns := createNamespace(t, c, "deploy")
		_, err := c.AppsV1().Deployments(ns).Create(ctx, Deployment(ns, "web", 1, "10m", "16Mi"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "a ScalingReplicaSet event for deployment web", func(ctx context.Context) (bool, error) {
			evs, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for _, e := range evs.Items {
				if e.Reason == "ScalingReplicaSet" && e.InvolvedObject.Kind == "Deployment" && e.InvolvedObject.Name == "web" {
					t.Logf("event: %s %s %s/%s: %s", e.Type, e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message)
					return true, nil
				}
			}
			return false, nil
		})
	})

	t.Run("ServiceAccountRBAC", func(t *testing.T) {
		ctx := t.Context()
		ns := "rbac"
		path, err := cp.ServiceAccountKubeconfig(ctx, ns, "reader")
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatal(err)
		}
		sa, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err = sa.CoreV1().Events(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("list events without any Role: got %v, want 403 Forbidden", err)
		}

		_, err = c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "events-reader"},
			Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"list"},
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "events-reader"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "events-reader"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "reader"}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The authorizer sees new bindings through an informer: wait for it.
		eventually(t, "the RoleBinding to allow listing events", func(ctx context.Context) (bool, error) {
			_, err := sa.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
			if apierrors.IsForbidden(err) {
				return false, nil
			}
			return err == nil, err
		})
		// Only in that namespace, and only list.
		if _, err := sa.CoreV1().Events(corev1.NamespaceDefault).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("list events in namespace default: got %v, want 403 Forbidden", err)
		}
		if _, err := sa.CoreV1().Events(ns).Watch(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("watch events (not granted): got %v, want 403 Forbidden", err)
		}
	})

	t.Run("RestartAPIServer", func(t *testing.T) {
		ctx := t.Context()
		ns := createNamespace(t, c, "restart")
		before, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "survivor"},
			Data:       map[string]string{"key": "value"},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		url := cp.APIServerURL()
		if err = cp.StopAPIServer(); err != nil {
			t.Fatal(err)
		}
		if cp.Running(KubeAPIServer) {
			t.Fatal("kube-apiserver still running after StopAPIServer")
		}
		if _, err = c.CoreV1().ConfigMaps(ns).Get(ctx, "survivor", metav1.GetOptions{}); err == nil {
			t.Fatal("get succeeded while kube-apiserver is stopped")
		}
		if err = cp.StartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		if cp.APIServerURL() != url {
			t.Fatalf("API server URL changed from %s to %s", url, cp.APIServerURL())
		}
		after, err := c.CoreV1().ConfigMaps(ns).Get(ctx, "survivor", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get configmap after restart: %v", err)
		}
		if after.UID != before.UID || after.Data["key"] != "value" {
			t.Fatalf("configmap changed across the restart: before %s %v, after %s %v", before.UID, before.Data, after.UID, after.Data)
		}
		if err := cp.StartAPIServer(ctx); err == nil {
			t.Error("a second StartAPIServer succeeded while kube-apiserver runs")
		}
	})

	t.Run("Files", func(t *testing.T) {
		for _, f := range []string{cp.Kubeconfig(), cp.LogPath(KubeAPIServer), filepath.Join(cp.Dir(), "pki", "ca.crt")} {
			if _, err := os.Stat(f); err != nil {
				t.Error(err)
			}
		}
	})
}

func createNamespace(t *testing.T, c kubernetes.Interface, name string) string {
	t.Helper()
	_, err := c.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return name
}
