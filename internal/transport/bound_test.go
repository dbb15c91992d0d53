package transport

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRedirectLoopBounded: a server that redirects to itself is followed
// MaxRedirects times even by a client whose CheckRedirect sets no limit,
// as go-containerregistry's does.
func TestRedirectLoopBounded(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Redirect(w, r, r.URL.Path, http.StatusTemporaryRedirect)
	}))
	client := &http.Client{
		Transport:     New(Options{}),
		CheckRedirect: func(*http.Request, []*http.Request) error { return nil },
	}
	start := time.Now()
	resp, err := client.Get(srv.URL + "/v2/loop/manifests/1")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("redirect loop ended with %s, want an error", resp.Status)
	}
	if !errors.Is(err, ErrTooManyRedirects) {
		t.Errorf("error = %v, want ErrTooManyRedirects", err)
	}
	if got, want := n.Load(), int64(MaxRedirects+1); got != want {
		t.Errorf("server saw %d requests, want %d", got, want)
	}
	t.Logf("error after %v: %v", time.Since(start), err)
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = &atomic.Int64{}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String(), accepted
}

func TestSilentServerBounded(t *testing.T) {
	t.Parallel()
	addr, accepted := silentServer(t)
	const limit = 300 * time.Millisecond
	rt := New(Options{ResponseHeaderTimeout: limit, Sleep: (&sleepRecorder{}).Sleep})
	start := time.Now()
	_, err := get(t, rt, "http://"+addr+"/v2/")
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("error = %v, want ErrTimeout", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %v is not a net.Error timeout", err)
	}
	if want := "no response headers within 300ms"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if took > limit+2*time.Second {
		t.Errorf("took %v, want about %v", took, limit)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (a timeout is not retried)", n)
	}
}

// TestSlowBodyBounded: a body that sends 1 byte per second fails within
// the idle limit with one clear error.
func TestSlowBodyBounded(t *testing.T) {
	t.Parallel()
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(200)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}))
	const limit = 1500 * time.Millisecond
	rt := New(Options{IdleTimeout: limit})
	start := time.Now()
	resp, err := get(t, rt, srv.URL+"/blob?sig=SECRET")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("reading the body: %v after %d bytes, want ErrTimeout", err, n)
	}
	if want := "GET " + srv.URL + "/blob?sig=REDACTED: less than 1 KiB of the response body arrived within 1.5s"; err.Error() != want {
		t.Errorf("error = %q", err)
	}
	if took > limit+2*time.Second || n == 0 {
		t.Errorf("read %d bytes in %v, want a few within about %v", n, took, limit)
	}
}

// TestSlowUploadNotCut: the time limit to response headers starts once the
// body is sent, so an upload may take longer than it; a server that then
// says nothing still hits the limit.
func TestSlowUploadNotCut(t *testing.T) {
	t.Parallel()
	for _, sized := range []bool{false, true} {
		for _, silentAfter := range []bool{false, true} {
			name := map[bool]string{false: "chunked", true: "sized"}[sized] + map[bool]string{false: "", true: "-then-silent"}[silentAfter]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					n, _ := io.Copy(io.Discard, r.Body)
					if silentAfter {
						<-r.Context().Done()
						return
					}
					if n != 4 {
						w.WriteHeader(400)
						return
					}
					w.WriteHeader(201)
				}))
				const limit = 100 * time.Millisecond
				rt := New(Options{ResponseHeaderTimeout: limit, RetryBudget: -1})
				pr, pw := io.Pipe()
				go func() {
					for i := 0; i < 4; i++ {
						time.Sleep(limit)
						pw.Write([]byte("x"))
					}
					pw.Close()
				}()
				req, err := http.NewRequest(http.MethodPut, srv.URL+"/upload", pr)
				if err != nil {
					t.Fatal(err)
				}
				if sized {
					req.ContentLength = 4
				}
				start := time.Now()
				resp, err := rt.RoundTrip(req)
				if silentAfter {
					if !errors.Is(err, ErrTimeout) {
						t.Fatalf("silent after upload: %v, want ErrTimeout", err)
					}
					if took := time.Since(start); took < 4*limit {
						t.Errorf("timed out after %v, before the upload ended", took)
					}
					return
				}
				if err != nil {
					t.Fatalf("slow upload: %v", err)
				}
				resp.Body.Close()
				if resp.StatusCode != 201 {
					t.Errorf("status = %d, want 201", resp.StatusCode)
				}
			})
		}
	}
}

// TestSlowReaderNotCut: time the caller spends between Reads is not the
// server's: a body that arrived is never failed for it.
func TestSlowReaderNotCut(t *testing.T) {
	t.Parallel()
	srv := serve(t, reply(200, nil, strings.Repeat("y", 3000)))
	rt := New(Options{IdleTimeout: 100 * time.Millisecond})
	resp, err := get(t, rt, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 500)
	total := 0
	for {
		time.Sleep(60 * time.Millisecond)
		n, err := resp.Body.Read(buf)
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", total, err)
		}
	}
	if total != 3000 {
		t.Errorf("read %d bytes, want 3000", total)
	}
}
