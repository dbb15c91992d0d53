package gha

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/cache"
)

// jwt makes an unsigned token with the given ac claim (as GitHub sends it:
// a JSON string holding the array).
func jwt(t *testing.T, scopes []TokenScope) string {
	t.Helper()
	ac, err := json.Marshal(scopes)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(map[string]any{"ac": string(ac), "exp": 4102444800, "nbf": 0})
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc(payload) + "." + enc([]byte("not-a-signature"))
}

func TestCacheMode(t *testing.T) {
	tests := []struct {
		mode                 string
		canImport, canExport bool
	}{
		{"", true, true},
		{ModeWrite, true, true},
		{ModeRead, true, false},
		{ModeWriteOnly, false, true},
		{ModeNone, false, false},
		{"READ", true, true}, // unknown values allow both, as @actions/cache does
		{"sometimes", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			getenv := env(EnvRuntimeToken, "opaque", EnvCacheURL, "http://127.0.0.1:1/", EnvCacheMode, tt.mode)
			ic, err := ParseImportConfig(nil, getenv)
			if err != nil {
				t.Fatal(err)
			}
			ec, err := ParseExportConfig(nil, getenv)
			if err != nil {
				t.Fatal(err)
			}
			if got := ic.Skipped() == nil; got != tt.canImport {
				t.Errorf("import allowed = %v (%v), want %v", got, ic.Skipped(), tt.canImport)
			}
			if got := ec.Skipped() == nil; got != tt.canExport {
				t.Errorf("export allowed = %v (%v), want %v", got, ec.Skipped(), tt.canExport)
			}
			if err := ec.Skipped(); err != nil && (!errors.Is(err, ErrSkipped) || !IsSkip(err) || !strings.Contains(err.Error(), EnvCacheMode)) {
				t.Errorf("skip error %q: want ErrSkipped naming %s", err, EnvCacheMode)
			}
		})
	}
}

func TestTokenClaims(t *testing.T) {
	tests := []struct {
		name      string
		token     string
		canExport bool
		scopes    []TokenScope
	}{
		{"read-write scope", jwt(t, []TokenScope{{"refs/heads/main", 3}}), true, []TokenScope{{"refs/heads/main", 3}}},
		{"PR: write own ref, read base", jwt(t, []TokenScope{{"refs/pull/1/merge", 3}, {"refs/heads/main", 1}}), true,
			[]TokenScope{{"refs/pull/1/merge", 3}, {"refs/heads/main", 1}}},
		{"write-only bit", jwt(t, []TokenScope{{"refs/heads/x", 2}}), true, []TokenScope{{"refs/heads/x", 2}}},
		{"read-only token", jwt(t, []TokenScope{{"refs/heads/main", 1}, {"refs/heads/dev", 1}}), false,
			[]TokenScope{{"refs/heads/main", 1}, {"refs/heads/dev", 1}}},
		{"no scopes at all", jwt(t, []TokenScope{}), false, []TokenScope{}},
		{"not a JWT (kiln cache-server)", "plain-secret", true, nil},
		{"three parts, not JSON", "a.b.c", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseExportConfig(nil, env(EnvRuntimeToken, tt.token, EnvCacheURL, "http://127.0.0.1:1/"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.scopes, c.Access.Scopes); diff != "" {
				t.Errorf("scopes (-want +got):\n%s", diff)
			}
			err = c.Skipped()
			if got := err == nil; got != tt.canExport {
				t.Errorf("export allowed = %v (%v), want %v", got, err, tt.canExport)
			}
			if err != nil && (!errors.Is(err, ErrReadOnly) || !IsSkip(err)) {
				t.Errorf("skip error %q: want ErrReadOnly", err)
			}
			// A read-only token still imports.
			ic, _ := ParseImportConfig(nil, env(EnvRuntimeToken, tt.token, EnvCacheURL, "http://127.0.0.1:1/"))
			if ic.Skipped() != nil {
				t.Errorf("import skipped: %v", ic.Skipped())
			}
		})
	}
}

// A skipped import or export makes no request at all.
func TestSkipMakesNoRequest(t *testing.T) {
	f := newFake(t)
	getenv := env(EnvRuntimeToken, jwt(t, []TokenScope{{"refs/heads/main", 1}}), EnvCacheURL, f.srv.URL+"/", EnvCacheMode, ModeWriteOnly)
	ic, err := ParseImportConfig(nil, getenv)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ParseExportConfig(nil, getenv)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := NewImporter(ic, Options{}).Import(ctx); !errors.Is(err, ErrSkipped) {
		t.Errorf("import: got %v, want ErrSkipped", err)
	}
	m, src := smallManifest(t)
	if err := NewExporter(ec, Options{}).Export(ctx, m, src); !errors.Is(err, ErrReadOnly) {
		t.Errorf("export: got %v, want ErrReadOnly", err)
	}
	if len(f.log) != 0 {
		t.Errorf("requests made: %v", f.log)
	}
}

// A 403 on a write is ErrReadOnly, whatever the token said, on both APIs;
// the message says the export was skipped and holds no token.
func TestForbiddenWriteIsReadOnly(t *testing.T) {
	for _, version := range []int{1, 2} {
		for _, body := range []string{
			`{"code":"permission_denied","msg":"cache write denied: read-only token"}`,
			`{"message":"cache write denied: ` + testToken + `"}`,
		} {
			t.Run(fmtVersion(version), func(t *testing.T) {
				f := newFake(t)
				f.hook = func(w http.ResponseWriter, r *http.Request) bool {
					if r.Method == http.MethodPost && (strings.HasSuffix(r.URL.Path, "/caches") || strings.HasSuffix(r.URL.Path, "/CreateCacheEntry")) {
						f.fail(w, http.StatusForbidden, body)
						return true
					}
					return false
				}
				m, src := smallManifest(t)
				err := NewExporter(ExportConfig{Config: f.config(version)}, Options{}).Export(context.Background(), m, src)
				if !errors.Is(err, ErrReadOnly) {
					t.Fatalf("got %v, want ErrReadOnly", err)
				}
				if !strings.Contains(err.Error(), "this token may only read: export skipped") || strings.Contains(err.Error(), testToken) {
					t.Errorf("message %q", err)
				}
			})
		}
	}
	// An {"ok":false} that says the cache takes no writes is read-only
	// too, not "already there".
	for _, msg := range []string{
		"You have reached your configured budget, your cache is now read only",
		"cache write denied: this workflow may not write",
	} {
		f := newFake(t)
		f.hook = func(w http.ResponseWriter, r *http.Request) bool {
			if strings.HasSuffix(r.URL.Path, "/CreateCacheEntry") {
				f.answer(w, map[string]any{"ok": false, "message": msg})
				return true
			}
			return false
		}
		m, src := smallManifest(t)
		err := NewExporter(ExportConfig{Config: f.config(2)}, Options{}).Export(context.Background(), m, src)
		if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), msg) {
			t.Errorf("ok:false %q: got %v, want ErrReadOnly with the message", msg, err)
		}
	}

	// A 403 from blob storage (an expired signature) is not the token's
	// fault: a plain error.
	f := newFake(t)
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "<Error><Code>AuthenticationFailed</Code><Message>Signature not valid in the specified time frame</Message></Error>")
			return true
		}
		return false
	}
	data := []byte("blob")
	err := New(f.config(2), Options{}).Put(context.Background(), blobOf(data), bytes.NewReader(data))
	if err == nil || IsSkip(err) || !strings.Contains(err.Error(), "AuthenticationFailed") {
		t.Errorf("storage 403: got %v, want a plain error with Azure's code", err)
	}

	// The same 403 on a read is a plain error, not a skip.
	f = newFake(t)
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		f.fail(w, http.StatusForbidden, `{"message":"no"}`)
		return true
	}
	_, _, err = NewImporter(ImportConfig{Config: f.config(1)}, Options{}).Import(context.Background())
	if err == nil || IsSkip(err) || cache.IsMiss(err) {
		t.Errorf("import after 403: got %v, want a plain error", err)
	}
}

func fmtVersion(v int) string { return "v" + string(rune('0'+v)) }
