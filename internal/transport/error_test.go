package transport

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body        string
		wantCode, wantMsg string
	}{
		{"registry errors", `{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"},{"code":"DENIED","message":"quota exceeded for org"}]}`, "MANIFEST_INVALID", "manifest invalid; quota exceeded for org"},
		{"twirp", `{"code":"resource_exhausted","msg":"cache storage quota reached","meta":{}}`, "resource_exhausted", "cache storage quota reached"},
		{"rest message", `{"message":"Bad credentials","documentation_url":"https://docs.example/x"}`, "", "Bad credentials"},
		{"oauth error", `{"error":"invalid_grant","error_description":"token expired"}`, "", "invalid_grant: token expired"},
		{"azure xml", "\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.\nRequestId:1b2c\nTime:2026-01-01T00:00:00Z</Message></Error>", "AuthenticationFailed", "Server failed to authenticate the request."},
		{"s3 xml", `<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>`, "SignatureDoesNotMatch", "The request signature we calculated does not match"},
		{"html", "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>", "", "502 Bad Gateway"},
		{"text", "\n  request entity too large  \nsecond line\n", "", "request entity too large"},
		{"empty", "  \n", "", ""},
		{"redacted", "upload to https://s.example/b?sig=SECRET refused", "", "upload to https://s.example/b?sig=REDACTED refused"},
		{"clipped", strings.Repeat("é", 400), "", strings.Repeat("é", 150) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := ParseMessage([]byte(tt.body))
			if code != tt.wantCode || msg != tt.wantMsg {
				t.Errorf("ParseMessage = %q, %q; want %q, %q", code, msg, tt.wantCode, tt.wantMsg)
			}
		})
	}
}

func TestErrorLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"full", &Error{Service: "registry ghcr.io", Method: "PUT", URL: "https://ghcr.io/v2/a/manifests/1", Status: 403, Code: "DENIED", Message: "denied", Hint: "run `kiln login ghcr.io`"},
			"registry ghcr.io: PUT https://ghcr.io/v2/a/manifests/1: 403 Forbidden: DENIED: denied (run `kiln login ghcr.io`)"},
		{"retried", &Error{Method: "GET", URL: "https://c.example/x", Status: 503, Attempts: 4, Elapsed: 1750 * time.Millisecond},
			"GET https://c.example/x: 503 Service Unavailable (gave up after 4 attempts in 1.8s)"},
		{"network", &Error{Service: "registry r:5000", Method: "GET", URL: "http://r:5000/v2/", Err: errors.New("connection refused")},
			"registry r:5000: GET http://r:5000/v2/: connection refused"},
		{"before any request", &Error{Service: "cache service", Err: errors.New("no token")}, "cache service: no token"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%s: Error() = %q\nwant %q", tt.name, got, tt.want)
		}
		if strings.Contains(tt.err.Error(), "\n") {
			t.Errorf("%s: Error() spans lines", tt.name)
		}
	}
}

func TestNewError(t *testing.T) {
	t.Parallel()
	s := &script{steps: []http.HandlerFunc{reply(429, map[string]string{"Content-Type": "application/json"}, `{"code":"resource_exhausted","msg":"too many requests for this repository"}`)}}
	srv := serve(t, s)
	clock := newFakeClock()
	rt := New(Options{Now: clock.Now, Sleep: clock.Sleep, RetryBudget: time.Second, Jitter: func() float64 { return 0.5 }})
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/twirp/Cache/Create?sig=SECRET", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("u", "SECRET")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := NewError(resp)
	want := &Error{
		Method: "POST", URL: srv.URL + "/twirp/Cache/Create?sig=REDACTED", Status: 429,
		Code: "resource_exhausted", Message: "too many requests for this repository",
		Attempts: 3, Elapsed: 750 * time.Millisecond,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NewError (-want +got):\n%s", diff)
	}
	if strings.Contains(got.Error(), "SECRET") {
		t.Errorf("error leaks: %s", got)
	}
}

func TestNewRequestError(t *testing.T) {
	t.Parallel()
	srv := serve(t, http.HandlerFunc(hangUp))
	clock := newFakeClock()
	client := &http.Client{Transport: New(Options{Base: fresh(), Now: clock.Now, Sleep: clock.Sleep, RetryBudget: 300 * time.Millisecond, Jitter: func() float64 { return 0.5 }})}
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/blob?se=SECRET", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Do(req)
	if err == nil {
		t.Fatal("Do succeeded")
	}
	e := NewRequestError(req, err)
	if e.Method != "GET" || e.URL != srv.URL+"/blob?se=REDACTED" || e.Attempts != 2 || !errors.Is(e, io.EOF) {
		t.Errorf("NewRequestError = %+v, want GET, redacted URL, 2 attempts, EOF", e)
	}
	if s := e.Error(); strings.Contains(s, "SECRET") || !strings.Contains(s, "gave up after 2 attempts") {
		t.Errorf("Error() = %q", s)
	}
	// Without the request, the *url.Error names it.
	if diff := cmp.Diff(*e, *NewRequestError(nil, err), cmpopts.EquateErrors()); diff != "" {
		t.Errorf("NewRequestError(nil, err) differs from NewRequestError(req, err) (-req +nil):\n%s", diff)
	}
}
