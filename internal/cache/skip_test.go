package cache

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestCountRequests(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	var n atomic.Int64
	c := &http.Client{Transport: CountRequests(nil, &n)}
	for range 3 {
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got := n.Load(); got != 3 {
		t.Errorf("got %d requests, want 3", got)
	}
}
