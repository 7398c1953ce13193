package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki holds the PEM material the control plane needs. Every Start makes a
// new set; nothing is shared between control planes.
type pki struct {
	caCert []byte // PEM, also the trust root for the serving certificate

	adminCert []byte // client certificate, O=system:masters
	adminKey  []byte

	// Paths of the files written for the components.
	caCertFile   string
	servingCert  string
	servingKey   string
	saPrivateKey string
	saPublicKey  string
}

// serviceClusterIPRange is the --service-cluster-ip-range of the API server;
// its first address is the kubernetes.default Service, which the serving
// certificate names too.
const serviceClusterIPRange = "10.0.0.0/24"

var kubernetesServiceIP = net.ParseIP("10.0.0.1")

// AdminUser and AdminGroup are the identity of the admin credential in the
// admin kubeconfig (a client certificate signed by the control plane's CA).
const (
	AdminUser  = "kubetest-admin"
	AdminGroup = "system:masters"
)

func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
}

// generatePKI writes a CA, the API server's serving certificate, the admin
// client certificate and the service-account key pair into dir. The serving
// certificate names 127.0.0.1, the kubernetes Service and extraIPs.
func generatePKI(dir string, extraIPs ...net.IP) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour) // tolerate small clock differences
	notAfter := now.Add(10 * 365 * 24 * time.Hour)

	caKey, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	sn, err := serialNumber()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "kubetest-ca"},
		NotBefore:             now,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	issue := func(tmpl *x509.Certificate) (certOut, keyOut []byte, err error) {
		key, err := newKey()
		if err != nil {
			return nil, nil, err
		}
		sn, err := serialNumber()
		if err != nil {
			return nil, nil, err
		}
		tmpl.SerialNumber = sn
		tmpl.NotBefore = now
		tmpl.NotAfter = notAfter
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		tmpl.BasicConstraintsValid = true
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		kp, err := keyPEM(key)
		if err != nil {
			return nil, nil, err
		}
		return certPEM(der), kp, nil
	}

	servingCert, servingKey, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{
			"localhost", "kubernetes", "kubernetes.default",
			"kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
		},
		IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, kubernetesServiceIP}, extraIPs...),
	})
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	adminCert, adminKey, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: AdminUser, Organization: []string{AdminGroup}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("admin client certificate: %w", err)
	}

	saKey, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("service-account key: %w", err)
	}
	saKeyPEM, err := keyPEM(saKey)
	if err != nil {
		return nil, err
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	saPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER})

	p := &pki{
		caCert:       certPEM(caDER),
		adminCert:    adminCert,
		adminKey:     adminKey,
		caCertFile:   filepath.Join(dir, "ca.crt"),
		servingCert:  filepath.Join(dir, "apiserver.crt"),
		servingKey:   filepath.Join(dir, "apiserver.key"),
		saPrivateKey: filepath.Join(dir, "sa.key"),
		saPublicKey:  filepath.Join(dir, "sa.pub"),
	}
	files := []struct {
		path string
		data []byte
	}{
		{p.caCertFile, p.caCert},
		{p.servingCert, servingCert},
		{p.servingKey, servingKey},
		{p.saPrivateKey, saKeyPEM},
		{p.saPublicKey, saPubPEM},
		{filepath.Join(dir, "admin.crt"), adminCert},
		{filepath.Join(dir, "admin.key"), adminKey},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}
