package kubetest

import (
	"context"
	"fmt"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ServiceAccountTokenExpiry is the lifetime of the tokens that
// ServiceAccountKubeconfig mints.
const ServiceAccountTokenExpiry = 3600 // seconds

func adminAuth(p *pki) *clientcmdapi.AuthInfo {
	return &clientcmdapi.AuthInfo{ClientCertificateData: p.adminCert, ClientKeyData: p.adminKey}
}

// writeKubeconfig writes a self-contained kubeconfig (everything embedded)
// with a single context.
func writeKubeconfig(path, server string, caPEM []byte, user string, auth *clientcmdapi.AuthInfo) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = auth
	cfg.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: user}
	cfg.CurrentContext = "kubetest"
	return clientcmd.WriteToFile(*cfg, path)
}

// ServiceAccountKubeconfig creates the namespace and the ServiceAccount when
// they are missing, mints a token for it with the TokenRequest API (valid
// ServiceAccountTokenExpiry seconds) and writes a kubeconfig that uses it.
// It returns the kubeconfig's path, in Dir. The ServiceAccount gets no RBAC
// rules here: it can do only what the cluster's defaults and the caller's
// Roles allow.
func (cp *ControlPlane) ServiceAccountKubeconfig(ctx context.Context, namespace, name string) (string, error) {
	c := cp.client
	_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("service-account kubeconfig: create namespace %s: %w", namespace, err)
	}
	_, err = c.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("service-account kubeconfig: create serviceaccount %s/%s: %w", namespace, name, err)
	}
	expiry := int64(ServiceAccountTokenExpiry)
	tr, err := c.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("service-account kubeconfig: request token for %s/%s: %w", namespace, name, err)
	}
	user := "system:serviceaccount:" + namespace + ":" + name
	path := filepath.Join(cp.dir, "kubeconfig-sa-"+namespace+"-"+name)
	if err := writeKubeconfig(path, cp.restConfig.Host, cp.pki.caCert, user, &clientcmdapi.AuthInfo{Token: tr.Status.Token}); err != nil {
		return "", fmt.Errorf("service-account kubeconfig: write %s: %w", path, err)
	}
	return path, nil
}
