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

	"github.com/kiln-build/kiln/internal/transport"
)

func TestErrorCarriesRegistryMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault func(http.ResponseWriter, *http.Request)
		match func(*http.Request) bool
		want  transport.Error // Service is filled in per test
		// wantText must all appear in the error string.
		wantText []string
	}{
		{
			name:  "json errors",
			match: isManifestPut,
			fault: status(400, map[string]string{"Content-Type": "application/json"},
				`{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"},{"code":"DENIED","message":"quota exceeded for org"}]}`),
			want:     transport.Error{Method: "PUT", Status: 400, Code: "MANIFEST_INVALID", Message: "manifest invalid; quota exceeded for org"},
			wantText: []string{"PUT", "400 Bad Request", "quota exceeded for org"},
		},
		{
			name:     "plain body",
			match:    isManifestPut,
			fault:    status(413, nil, "request entity too large\n"),
			want:     transport.Error{Method: "PUT", Status: 413, Message: "request entity too large"},
			wantText: []string{"413", "request entity too large"},
		},
		{
			name:  "denied on push names login",
			match: isManifestPut,
			fault: status(403, map[string]string{"Content-Type": "application/json"},
				`{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`),
			want:     transport.Error{Method: "PUT", Status: 403, Code: "DENIED", Message: "requested access to the resource is denied"},
			wantText: []string{"403 Forbidden", "requested access to the resource is denied", "run `kiln login 127.0.0.1:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &faultInjector{n: 1 << 30, match: tt.match, fault: tt.fault}
			reg := newRegistry(t, f.wrap)
			c := newClient(t, Options{RetryMaxWait: -1})
			err := c.Push(context.Background(), randomImage(t), []string{reg + "/err:1"})
			var e *transport.Error
			if !errors.As(err, &e) {
				t.Fatalf("Push error = %v (%T), want *Error", err, err)
			}
			want := tt.want
			want.Service = "registry " + reg
			got := *e
			got.URL, got.Hint, got.Err = "", "", nil
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Error (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(e.URL, "http://"+reg+"/v2/err/manifests/1") {
				t.Errorf("URL = %q, want the manifest URL", e.URL)
			}
			msg := err.Error()
			for _, w := range tt.wantText {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "failed to") {
				t.Errorf("error %q stammers", msg)
			}
		})
	}
}

func TestPushUnauthorizedSaysLogin(t *testing.T) {
	t.Parallel()
	reg := newRegistry(t, authRegistry(tokenAuth, "alice", "s3cret-pass"))
	c := newClient(t, Options{})
	err := c.Push(context.Background(), randomImage(t), []string{reg + "/private:1"})
	var e *transport.Error
	if !errors.As(err, &e) {
		t.Fatalf("Push error = %v (%T), want *Error", err, err)
	}
	if e.Status != http.StatusUnauthorized {
		t.Errorf("Status = %d, want 401", e.Status)
	}
	if want := "run `kiln login " + reg + "`"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

// TestSecretsNeverLeak pushes with good and bad credentials from a docker
// config, with debug logging on, and looks for the password, its base64
// form and the bearer token in every error and log line.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	const user, pass = "alice", "pa55-SECRET-word"
	for _, mode := range []authMode{basicAuth, tokenAuth} {
		for _, goodPass := range []bool{true, false} {
			name := map[authMode]string{basicAuth: "basic", tokenAuth: "token"}[mode]
			if !goodPass {
				name += "-bad-password"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				reg := newRegistry(t, authRegistry(mode, user, pass))
				usedPass := pass
				if !goodPass {
					usedPass = "wrong-SECRET-guess"
				}
				dir := t.TempDir()
				writeConfig(t, dir, map[string]any{"auths": map[string]any{reg: map[string]string{"auth": basicAuthValue(user, usedPass)}}})
				logger, logs := logBuffer()
				c := newClient(t, Options{DockerConfigDir: dir, Logger: logger})
				ctx := context.Background()
				err := c.Push(ctx, randomImage(t), []string{reg + "/secret:1"})
				if goodPass && err != nil {
					t.Fatalf("Push: %v", err)
				}
				if !goodPass && err == nil {
					t.Fatal("Push with a wrong password succeeded")
				}
				if goodPass {
					if _, _, err := c.Image(ctx, reg+"/secret:1"); err != nil {
						t.Fatalf("Image: %v", err)
					}
				}
				if logs.String() == "" {
					t.Fatal("debug log is empty; the leak check would be vacuous")
				}
				out := logs.String()
				if err != nil {
					out += "\n" + err.Error()
				}
				for _, secret := range []string{usedPass, basicAuthValue(user, usedPass), testToken} {
					if strings.Contains(out, secret) {
						t.Errorf("secret %q leaked into:\n%s", secret, out)
					}
				}
			})
		}
	}
}

func writeConfig(t *testing.T, dir string, cfg map[string]any) {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}
