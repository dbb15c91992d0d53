package remote

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/kiln-build/kiln/internal/imagetest"

	"github.com/kiln-build/kiln/internal/transport"
)

// testPKI is a CA and a leaf certificate for 127.0.0.1 signed by it.
type testPKI struct {
	caPEM []byte
	leaf  tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	p := imagetest.NewPKI(t)
	return testPKI{caPEM: p.CAPEM, leaf: p.Leaf}
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
				var e *transport.Error
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
