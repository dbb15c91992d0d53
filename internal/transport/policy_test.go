package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// recordingTransport records the scheme it was asked to use.
type recordingTransport struct{ scheme *string }

func (f recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	*f.scheme = r.URL.Scheme
	return nil, errors.New("sent")
}

func TestPlainHTTPOnlyForLoopbackAndInsecure(t *testing.T) {
	t.Parallel()
	p, err := NewPolicy([]string{"reg.lan:5000", "http://plain.lan/"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host  string
		allow bool
	}{
		{"127.0.0.1:5000", true},
		{"127.0.0.2:5000", true},
		{"localhost:5000", true},
		{"LOCALHOST", true},
		{"[::1]:5000", true},
		{"reg.lan:5000", true},
		{"reg.lan:5001", false},
		{"plain.lan:8080", true},
		{"10.1.2.3:5000", false},
		{"192.168.1.9", false},
		{"registry.localhost:5000", false},
		{"ghcr.io", false},
	}
	for _, tt := range tests {
		if got := p.AllowHTTP(tt.host); got != tt.allow {
			t.Errorf("AllowHTTP(%q) = %v, want %v", tt.host, got, tt.allow)
		}
		var scheme string
		g := &httpGuard{inner: recordingTransport{&scheme}, policy: p}
		req, _ := http.NewRequest("GET", "http://"+tt.host+"/v2/", nil)
		req.Header.Set("Authorization", "Basic c2VjcmV0")
		g.RoundTrip(req)
		want := "https"
		if tt.allow {
			want = "http"
		}
		if scheme != want {
			t.Errorf("http://%s went out as %s, want %s", tt.host, scheme, want)
		}
		// HTTPS always passes through as it is.
		req, _ = http.NewRequest("GET", "https://"+tt.host+"/v2/", nil)
		if g.RoundTrip(req); scheme != "https" {
			t.Errorf("https://%s went out as %s", tt.host, scheme)
		}
	}
	// The zero Policy is loopback only.
	var zero Policy
	if !zero.AllowHTTP("127.0.0.1:1") || zero.AllowHTTP("reg.lan:5000") || zero.Insecure("127.0.0.1:1") {
		t.Errorf("zero Policy: want plain HTTP to loopback only and nothing insecure")
	}
	if _, err := NewPolicy([]string{"ok:1", "https://"}); !errors.Is(err, ErrEmptyHost) {
		t.Errorf("NewPolicy with an empty name = %v, want ErrEmptyHost", err)
	}
}

// TestNewGuardsPlainHTTP: a Transport sends http:// to a non-loopback
// host over TLS, whatever Base.
func TestNewGuardsPlainHTTP(t *testing.T) {
	t.Parallel()
	var scheme string
	rt := New(Options{Base: recordingTransport{&scheme}, RetryBudget: -1})
	if _, err := get(t, rt, "http://10.0.0.7:5000/v2/"); err == nil || scheme != "https" {
		t.Errorf("http://10.0.0.7:5000 went out as %q (err %v), want https", scheme, err)
	}
}

func TestTLSPolicy(t *testing.T) {
	t.Parallel()
	pki := imagetest.NewPKI(t)
	srv := httptest.NewUnstartedServer(reply(200, nil, "hello"))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.Leaf}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	hostport := strings.TrimPrefix(srv.URL, "https://")
	port := hostport[strings.LastIndex(hostport, ":"):]
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pki.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := LoadCAFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	insecure, err := NewPolicy([]string{hostport})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		opts     Options
		url      string
		wantCert bool // a certificate error
	}{
		{name: "with CA file", opts: Options{RootCAs: pool}, url: srv.URL},
		{name: "insecure skips verification", opts: Options{Policy: insecure}, url: srv.URL},
		{name: "insecure is per host", opts: Options{Policy: insecure}, url: "https://localhost" + port, wantCert: true},
		{name: "without CA", opts: Options{}, url: srv.URL, wantCert: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.RetryBudget = -1
			resp, err := get(t, New(tt.opts), tt.url)
			if tt.wantCert {
				var unknown x509.UnknownAuthorityError
				var host x509.HostnameError
				if !errors.As(err, &unknown) && !errors.As(err, &host) {
					t.Errorf("error = %v, want a certificate error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "hello" {
				t.Errorf("body = %q", body)
			}
		})
	}
}

func TestLoadCAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{dir + "/nope.pem": "nope.pem: no such file", junk: "junk.pem: no PEM certificate"} {
		if _, err := LoadCAFile(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadCAFile(%s) = %v, want an error containing %q", path, err, want)
		}
	}
}

// TestBaseNotModified: New clones an *http.Transport it is given.
func TestBaseNotModified(t *testing.T) {
	t.Parallel()
	base := &http.Transport{}
	p, _ := NewPolicy([]string{"reg.lan"})
	New(Options{Base: base, Policy: p, RootCAs: x509.NewCertPool()})
	// Clone itself may fill in HTTP/2 defaults; the policy must not land.
	if c := base.TLSClientConfig; c != nil && (c.RootCAs != nil || c.InsecureSkipVerify) {
		t.Errorf("New applied the policy to Options.Base itself")
	}
}
