package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
)

// mountedToken is the ServiceAccount token the kubelet mounted into the
// Pod, read from the node's volume directory: the credential the
// collector in that Pod uses.
func mountedToken(t *testing.T, cp *kubetest.ControlPlane, pod corev1.Pod) string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(cp.Node().KubeletRootDir(), "pods", string(pod.UID), "volumes", "kubernetes.io~projected", "*", "token"))
	if len(paths) != 1 {
		t.Fatalf("pod %s: want one projected ServiceAccount token, found %v", pod.Name, paths)
	}
	b, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tokenClient is a client that authenticates with token only.
func tokenClient(t *testing.T, cp *kubetest.ControlPlane, token string) kubernetes.Interface {
	t.Helper()
	admin := cp.RESTConfig()
	c, err := kubernetes.NewForConfig(&rest.Config{
		Host:            admin.Host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func whoami(t *testing.T, c kubernetes.Interface) string {
	t.Helper()
	r, err := c.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("self subject review: %v", err)
	}
	return r.Status.UserInfo.Username
}

// rules is what a SelfSubjectRulesReview says the client may do in
// namespace, one "group/resource verb [name]" (or "url verb") per rule.
func rules(t *testing.T, c kubernetes.Interface, namespace string) map[string]bool {
	t.Helper()
	r, err := c.AuthorizationV1().SelfSubjectRulesReviews().Create(t.Context(), &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: namespace},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("self subject rules review in %s: %v", namespace, err)
	}
	if r.Status.Incomplete {
		t.Fatalf("rules review in %s incomplete: %s", namespace, r.Status.EvaluationError)
	}
	out := map[string]bool{}
	for _, rr := range r.Status.ResourceRules {
		names := rr.ResourceNames
		if len(names) == 0 {
			names = []string{"*"}
		}
		for _, g := range rr.APIGroups {
			for _, res := range rr.Resources {
				for _, v := range rr.Verbs {
					for _, n := range names {
						out[fmt.Sprintf("%s/%s %s %s", g, res, v, n)] = true
					}
				}
			}
		}
	}
	for _, nr := range r.Status.NonResourceRules {
		for _, u := range nr.NonResourceURLs {
			for _, v := range nr.Verbs {
				out[u+" "+v] = true
			}
		}
	}
	return out
}

// extraRules is what have grants beyond base (the rules every
// authenticated ServiceAccount has), sorted.
func extraRules(have, base map[string]bool) []string {
	var out []string
	for r := range have {
		if !base[r] {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// checkRules compares the rules of the collector's mounted token with
// those of a ServiceAccount without any binding, namespace by namespace:
// the difference must be exactly want.
func checkRules(t *testing.T, collector, nobody kubernetes.Interface, want map[string][]string) {
	t.Helper()
	for ns, w := range want {
		got := extraRules(rules(t, collector, ns), rules(t, nobody, ns))
		slices.Sort(w)
		t.Logf("rules of the collector in namespace %s beyond every ServiceAccount's: %s", ns, strings.Join(got, "; "))
		if !slices.Equal(got, w) {
			t.Errorf("collector's rules in namespace %s beyond every ServiceAccount's:\n got %v\nwant %v", ns, got, w)
		}
	}
}

// noBindingClient is a client for a new ServiceAccount with no binding.
func noBindingClient(t *testing.T, cp *kubetest.ControlPlane, namespace string) kubernetes.Interface {
	t.Helper()
	path, err := cp.ServiceAccountKubeconfig(t.Context(), namespace, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	return kubeconfigClient(t, path)
}

func kubeconfigClient(t *testing.T, path string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
