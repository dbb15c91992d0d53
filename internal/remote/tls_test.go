package remote

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// testPKI is a CA and a leaf certificate for 127.0.0.1 signed by it.
type testPKI struct {
	caPEM []byte
	leaf  tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kiln test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return testPKI{
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		leaf:  tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey},
	}
}

func testCAPEM(t *testing.T) []byte { return newTestPKI(t).caPEM }

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLSPrivateCA(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pki := newTestPKI(t)
	srv := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.leaf}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	reg := strings.TrimPrefix(srv.URL, "https://")
	caFile := writeFile(t, t.TempDir(), "ca.pem", pki.caPEM)
	img := randomImage(t)
	want := mustDigest(t, img)

	tests := []struct {
		name     string
		opts     Options
		wantHint string // empty: push and pull succeed
	}{
		{name: "with CA file", opts: Options{CAFile: caFile}},
		{name: "insecure skips verification", opts: Options{Insecure: []string{reg}}},
		{name: "without CA", opts: Options{}, wantHint: "--registry-ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, tt.opts)
			tag := reg + "/tls/" + strings.ToLower(strings.ReplaceAll(tt.name, " ", "-")) + ":1"
			err := c.Push(ctx, img, []string{tag})
			if tt.wantHint != "" {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("Push error = %v (%T), want *Error", err, err)
				}
				t.Logf("error: %v", err)
				if !strings.Contains(err.Error(), tt.wantHint) || !strings.Contains(err.Error(), "certificate") {
					t.Errorf("Push error = %q, want it to mention the certificate and %q", err, tt.wantHint)
				}
				return
			}
			if err != nil {
				t.Fatalf("Push: %v", err)
			}
			_, h, err := c.Image(ctx, tag)
			if err != nil {
				t.Fatalf("Image: %v", err)
			}
			if h != want {
				t.Errorf("digest = %s, want %s", h, want)
			}
		})
	}
}
