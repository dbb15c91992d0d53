package remote

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kiln-build/kiln/internal/transport"
)

func readConfig(t *testing.T, dir string) map[string]any {
	t.Helper()
	path := filepath.Join(dir, "config.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("config.json mode = %v, want 0600", perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("config.json is not JSON: %v\n%s", err, b)
	}
	return m
}

func TestLogin(t *testing.T) {
	t.Parallel()
	const user, pass = "bob", "hunter2-SECRET"
	for _, mode := range []authMode{basicAuth, tokenAuth} {
		name := map[authMode]string{basicAuth: "basic", tokenAuth: "token"}[mode]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			reg := newRegistry(t, authRegistry(mode, user, pass))
			dir := filepath.Join(t.TempDir(), "docker") // does not exist yet: Login creates it
			c := newClient(t, Options{DockerConfigDir: dir})

			err := c.Login(ctx, reg, user, "wrong-SECRET")
			var e *transport.Error
			if !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
				t.Fatalf("Login(bad password) = %v, want *Error with status 401", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, reg) || !strings.Contains(msg, "401") || strings.Contains(msg, "wrong-SECRET") || strings.Contains(msg, "\n") {
				t.Errorf("Login(bad password) error = %q, want one line naming %s and 401, without the password", msg, reg)
			}
			if _, err := os.Stat(filepath.Join(dir, "config.json")); !os.IsNotExist(err) {
				t.Errorf("a failed login wrote config.json (stat: %v)", err)
			}

			if err := c.Login(ctx, reg, user, pass); err != nil {
				t.Fatalf("Login: %v", err)
			}
			got := readConfig(t, dir)
			want := map[string]any{"auths": map[string]any{reg: map[string]any{"auth": basicAuthValue(user, pass)}}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config.json (-want +got):\n%s", diff)
			}
			// The stored credentials are what the keychain then uses.
			if err := c.Push(ctx, randomImage(t), []string{reg + "/after-login:1"}); err != nil {
				t.Errorf("Push after Login: %v", err)
			}
		})
	}
}

func TestLoginPreservesConfig(t *testing.T) {
	t.Parallel()
	reg := newRegistry(t, authRegistry(basicAuth, "u", "p"))
	dir := t.TempDir()
	writeConfig(t, dir, map[string]any{
		"auths": map[string]any{
			"other.example": map[string]any{"auth": "b3RoZXI6eA=="},
			reg:             map[string]any{"auth": basicAuthValue("old", "old"), "email": "x@example.com"},
		},
		"experimental": "enabled",
		"proxies":      map[string]any{"default": map[string]any{"httpProxy": "http://proxy:3128"}},
	})
	c := newClient(t, Options{DockerConfigDir: dir})
	if err := c.Login(context.Background(), reg, "u", "p"); err != nil {
		t.Fatalf("Login: %v", err)
	}
	want := map[string]any{
		"auths": map[string]any{
			"other.example": map[string]any{"auth": "b3RoZXI6eA=="},
			reg:             map[string]any{"auth": basicAuthValue("u", "p")},
		},
		"experimental": "enabled",
		"proxies":      map[string]any{"default": map[string]any{"httpProxy": "http://proxy:3128"}},
	}
	if diff := cmp.Diff(want, readConfig(t, dir)); diff != "" {
		t.Errorf("config.json (-want +got):\n%s", diff)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".config.json.*")); len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

// TestCredentialHelper installs a docker-credential-kilntest script on PATH
// that keeps one credential in a file, and checks that Login stores through
// it and the keychain reads through it.
func TestCredentialHelper(t *testing.T) {
	// Not parallel: it changes PATH.
	ctx := context.Background()
	reg := newRegistry(t, authRegistry(tokenAuth, "carol", "helper-SECRET"))
	bin := t.TempDir()
	store := filepath.Join(bin, "stored.json")
	script := `#!/bin/sh
case "$1" in
store) cat > ` + store + ` ;;
get) if [ -f ` + store + ` ]; then cat ` + store + `; else echo "credentials not found in native keychain"; exit 1; fi ;;
*) exit 1 ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-kilntest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	tests := []struct {
		name string
		cfg  map[string]any
	}{
		{name: "credsStore", cfg: map[string]any{"credsStore": "kilntest"}},
		{name: "credHelpers", cfg: map[string]any{"credHelpers": map[string]any{reg: "kilntest"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(store)
			dir := t.TempDir()
			writeConfig(t, dir, tt.cfg)
			c := newClient(t, Options{DockerConfigDir: dir})
			if err := c.Push(ctx, randomImage(t), []string{reg + "/helper:1"}); err == nil {
				t.Fatal("Push before Login succeeded; the helper check would be vacuous")
			}
			if err := c.Login(ctx, reg, "carol", "helper-SECRET"); err != nil {
				t.Fatalf("Login: %v", err)
			}
			var stored helperCreds
			b, err := os.ReadFile(store)
			if err != nil {
				t.Fatalf("helper was not asked to store: %v", err)
			}
			if err := json.Unmarshal(b, &stored); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(helperCreds{ServerURL: reg, Username: "carol", Secret: "helper-SECRET"}, stored); diff != "" {
				t.Errorf("helper store input (-want +got):\n%s", diff)
			}
			cfg := readConfig(t, dir)
			if strings.Contains(mustJSON(t, cfg), "helper-SECRET") || strings.Contains(mustJSON(t, cfg), basicAuthValue("carol", "helper-SECRET")) {
				t.Errorf("config.json holds the secret although a helper is configured: %v", cfg)
			}
			if err := c.Push(ctx, randomImage(t), []string{reg + "/helper:1"}); err != nil {
				t.Errorf("Push with helper credentials: %v", err)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestKeychainLookup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cfg   map[string]any
		ref   string
		want  authn.AuthConfig
		anon  bool
		noCfg bool
	}{
		{name: "auth field", ref: "r.example:5000/a", cfg: map[string]any{"auths": map[string]any{"r.example:5000": map[string]any{"auth": basicAuthValue("u", "p:with:colons")}}}, want: authn.AuthConfig{Username: "u", Password: "p:with:colons"}},
		{name: "username password fields", ref: "r.example/a", cfg: map[string]any{"auths": map[string]any{"r.example": map[string]any{"username": "u", "password": "p"}}}, want: authn.AuthConfig{Username: "u", Password: "p"}},
		{name: "url key", ref: "r.example/a", cfg: map[string]any{"auths": map[string]any{"https://r.example/v1/": map[string]any{"auth": basicAuthValue("u", "p")}}}, want: authn.AuthConfig{Username: "u", Password: "p"}},
		{name: "docker hub key", ref: "library/alpine", cfg: map[string]any{"auths": map[string]any{"https://index.docker.io/v1/": map[string]any{"auth": basicAuthValue("hub", "p")}}}, want: authn.AuthConfig{Username: "hub", Password: "p"}},
		{name: "identity token", ref: "r.example/a", cfg: map[string]any{"auths": map[string]any{"r.example": map[string]any{"identitytoken": "idt"}}}, want: authn.AuthConfig{IdentityToken: "idt"}},
		{name: "other registry", ref: "s.example/a", cfg: map[string]any{"auths": map[string]any{"r.example": map[string]any{"auth": basicAuthValue("u", "p")}}}, anon: true},
		{name: "no config file", ref: "r.example/a", noCfg: true, anon: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if !tt.noCfg {
				writeConfig(t, dir, tt.cfg)
			}
			ref, err := name.ParseReference(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			a, err := (&configKeychain{dir: dir}).Resolve(ref.Context())
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if tt.anon {
				if a != authn.Anonymous {
					t.Errorf("Resolve = %v, want Anonymous", a)
				}
				return
			}
			got, err := a.Authorization()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, *got); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
		})
	}
}
