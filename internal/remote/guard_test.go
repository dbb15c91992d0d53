package remote

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

type failingTransport struct{ t *testing.T }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("sent")
}

func TestPlainHTTPOnlyForLoopbackAndInsecure(t *testing.T) {
	c, err := New(Options{Insecure: []string{"reg.lan:5000"}})
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
		{"[::1]:5000", true},
		{"reg.lan:5000", true},
		{"10.1.2.3:5000", false},
		{"192.168.1.9", false},
		{"registry.localhost:5000", false},
		{"ghcr.io", false},
	}
	for _, tt := range tests {
		if got := c.allowHTTP(tt.host); got != tt.allow {
			t.Errorf("allowHTTP(%q) = %v, want %v", tt.host, got, tt.allow)
		}
		g := &httpGuard{inner: failingTransport{t}, allow: c.allowHTTP}
		req, _ := http.NewRequest("GET", "http://"+tt.host+"/v2/", nil)
		req.Header.Set("Authorization", "Basic c2VjcmV0")
		_, err := g.RoundTrip(req)
		refused := err != nil && strings.Contains(err.Error(), "refusing plain HTTP")
		if refused == tt.allow {
			t.Errorf("http://%s: refused = %v, want %v (err %v)", tt.host, refused, !tt.allow, err)
		}
		// HTTPS always passes through.
		req, _ = http.NewRequest("GET", "https://"+tt.host+"/v2/", nil)
		if _, err := g.RoundTrip(req); err == nil || err.Error() != "sent" {
			t.Errorf("https://%s was not passed through: %v", tt.host, err)
		}
	}
}
