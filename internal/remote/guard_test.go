package remote

import (
	"errors"
	"net/http"
	"testing"
)

// recordingTransport records the scheme it was asked to use.
type recordingTransport struct{ scheme *string }

func (f recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	*f.scheme = r.URL.Scheme
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
		var scheme string
		g := &httpGuard{inner: recordingTransport{&scheme}, allow: c.allowHTTP}
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
}
