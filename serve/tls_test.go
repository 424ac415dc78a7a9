package serve

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns their paths and a
// pool that trusts the certificate.
func selfSigned(t *testing.T) (cert, key string, pool *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ssl-onnx test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return cert, key, pool
}

func TestTLS(t *testing.T) {
	cert, key, pool := selfSigned(t)
	ts := startServer(t, sharedEncoder(t), Config{TLSCert: cert, TLSKey: key})
	if !strings.HasPrefix(ts.URL, "https://") {
		t.Fatalf("URL %s: want https", ts.URL)
	}
	_, secret := ts.addKey(t, "eve", 0, 0)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("POST", ts.URL+"/v1/embeddings", strings.NewReader(string(rawBody(randomImages(1, 2)))))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Shape", "1,3,32,32")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("HTTPS request: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	// Clear text to the TLS port carries no answer.
	plain := "http://" + strings.TrimPrefix(ts.URL, "https://")
	if resp, err := http.Get(plain + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP answered 200 on the TLS port")
	}
	if _, err := New(sharedEncoder(t), Config{Store: ts.store, TLSCert: cert}); err == nil {
		t.Fatal("a certificate without its key was accepted")
	}
}

func TestCheckExposure(t *testing.T) {
	for _, tc := range []struct {
		addr          string
		tls, insecure bool
		ok            bool
	}{
		{"127.0.0.1:8700", false, false, true}, {"localhost:8700", false, false, true}, {"[::1]:8700", false, false, true},
		{"0.0.0.0:8700", false, false, false}, {":8700", false, false, false}, {"10.0.0.5:8700", false, false, false},
		{"0.0.0.0:8700", true, false, true}, {"0.0.0.0:8700", false, true, true},
	} {
		err := CheckExposure(tc.addr, tc.tls, tc.insecure)
		if (err == nil) != tc.ok {
			t.Errorf("CheckExposure(%q, tls %v, insecure %v) = %v", tc.addr, tc.tls, tc.insecure, err)
		}
	}
}
