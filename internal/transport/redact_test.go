package transport

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{in: "https://r.example/v2/a/blobs/uploads/123?_state=abc&digest=sha256%3A00", want: "https://r.example/v2/a/blobs/uploads/123?_state=REDACTED&digest=sha256%3A00"},
		{in: "https://user:pw@r.example/v2/", want: "https://r.example/v2/"},
		{in: "https://s3.example/blob?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA", want: "https://s3.example/blob?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"},
		{in: "https://auth.example/token?scope=repository%3Aa%3Apull&service=reg", want: "https://auth.example/token?scope=repository%3Aa%3Apull&service=reg"},
		{in: "https://acct.blob.core.windows.net/c/b?sv=2023-01-03&se=2026-01-01&sig=c2lnbmF0dXJl&sp=r&comp=block&blockid=AAA", want: "https://acct.blob.core.windows.net/c/b?blockid=AAA&comp=block&se=REDACTED&sig=REDACTED&sp=REDACTED&sv=REDACTED"},
		{in: "https://cache.example/_apis/artifactcache/cache?keys=kiln-abc&version=1&token=t0k", want: "https://cache.example/_apis/artifactcache/cache?keys=kiln-abc&token=REDACTED&version=1"},
		{in: "https://storage.googleapis.com/b/o?X-Goog-Signature=abc", want: "https://storage.googleapis.com/b/o?X-Goog-Signature=REDACTED"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := url.Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := RedactURL(u); got != tt.want {
				t.Errorf("RedactURL = %q, want %q", got, tt.want)
			}
		})
	}
	if got := RedactURL(nil); got != "" {
		t.Errorf("RedactURL(nil) = %q", got)
	}
}

func TestRedactHeader(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	for _, k := range []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Amz-Security-Token", "Accept"} {
		h.Set(k, "v-"+k)
	}
	got := RedactHeader(h)
	if diff := cmp.Diff(http.Header{"Accept": {"v-Accept"}}, got); diff != "" {
		t.Errorf("RedactHeader (-want +got):\n%s", diff)
	}
	if h.Get("Authorization") == "" {
		t.Error("RedactHeader modified its argument")
	}
}

func TestRedactString(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"GET https://x.example/b?sig=abc: EOF", "GET https://x.example/b?sig=REDACTED: EOF"},
		{`fetching "https://u:p@x.example/a?se=1".`, `fetching "https://x.example/a?se=REDACTED".`},
		{"header Authorization: Bearer eyJhbGciOi.payload.sig rejected", "header Authorization: Bearer REDACTED rejected"},
		{"basic dXNlcjpwYXNz", "basic REDACTED"},
		{"nothing to hide", "nothing to hide"},
	}
	for _, tt := range tests {
		if got := RedactString(tt.in); got != tt.want {
			t.Errorf("RedactString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactError(t *testing.T) {
	t.Parallel()
	uerr := &url.Error{Op: "Get", URL: "https://x.example/b?sig=SECRET", Err: io.ErrUnexpectedEOF}
	got := RedactError(uerr)
	var back *url.Error
	if !errors.As(got, &back) || strings.Contains(got.Error(), "SECRET") || !errors.Is(got, io.ErrUnexpectedEOF) {
		t.Errorf("RedactError(url.Error) = %v (%T): want a *url.Error without the secret that is still unexpected EOF", got, got)
	}
	wrapped := fmt.Errorf("reading blob from https://x.example/b?X-Amz-Signature=SECRET: %w", io.ErrUnexpectedEOF)
	got = RedactError(wrapped)
	if strings.Contains(got.Error(), "SECRET") || !errors.Is(got, io.ErrUnexpectedEOF) {
		t.Errorf("RedactError(wrapped) = %v: want no secret, still unexpected EOF", got)
	}
	plain := errors.New("plain")
	if RedactError(plain) != plain || RedactError(nil) != nil {
		t.Error("RedactError changed an error with nothing to hide")
	}
}
