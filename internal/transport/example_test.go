package transport_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/kiln-build/kiln/internal/transport"
)

// A client builds one Transport, sends through it (behind its own
// wrappers), and turns an answer it did not expect into a *transport.Error.
func Example() {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests) // retried
			return
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"code":"not_found","msg":"cache entry not found"}`)
	}))
	defer srv.Close()

	rt := transport.New(transport.Options{
		// Tests skip the real wait; the zero value waits.
		Sleep: func(context.Context, time.Duration) error { return nil },
	})
	client := &http.Client{Transport: rt}
	resp, err := client.Get(srv.URL + "/twirp/Cache/Get?sig=SECRET")
	if err != nil {
		fmt.Println(transport.NewRequestError(nil, err))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := transport.NewError(resp)
		e.Service = "cache service"
		fmt.Println(e.Status, e.Code, e.Message)
		fmt.Println(e.URL == srv.URL+"/twirp/Cache/Get?sig=REDACTED", calls.Load())
	}
	// Output:
	// 404 not_found cache entry not found
	// true 2
}
