package remote

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrtransport "github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/internal/transport"
)

// Login checks user and password against registry (HOST[:PORT]; Docker Hub
// as "docker.io") the way a push would authenticate: a /v2/ challenge, then
// basic auth or the token flow. When the registry accepts them, it stores
// them in DockerConfigDir/config.json: in the credential helper the config
// names for that registry (credHelpers, else credsStore), else as
// auths[registry].auth. The file is replaced atomically with mode 0600;
// every other key in it is kept as it was.
//
// A rejected password is a *transport.Error with Status 401 (or 403). Neither the
// password nor a token ever appears in an error.
func (c *Client) Login(ctx context.Context, registry, user, password string) error {
	if c.configDir == "" {
		return errors.New("remote: login needs Options.DockerConfigDir")
	}
	if user == "" || password == "" {
		return fmt.Errorf("logging in to %s: user and password must not be empty", registry)
	}
	reg, err := c.parseRegistry(registry)
	if err != nil {
		return err
	}
	regName := reg.RegistryStr()
	if err := c.checkLogin(ctx, reg, user, password); err != nil {
		var e *transport.Error
		if errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden) {
			e.Hint = fmt.Sprintf("%s rejected the password for user %q", regName, user)
		}
		return fmt.Errorf("logging in to %s: %w", regName, scrubSecret(err, password))
	}
	if err := storeCredentials(ctx, c.configDir, regName, user, password); err != nil {
		return fmt.Errorf("logging in to %s: %w", regName, scrubSecret(err, password))
	}
	return nil
}

// checkLogin authenticates against registry's /v2/ endpoint.
func (c *Client) checkLogin(ctx context.Context, reg name.Registry, user, password string) error {
	registry := reg.RegistryStr()
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	t := ggcrtransport.NewUserAgent(c.transport, c.userAgent)
	// For a bearer challenge this already fetches a token with the
	// credentials, which is where a token server rejects a bad password.
	tr, err := ggcrtransport.NewWithContext(ctx, reg, auth, t, nil)
	if err != nil {
		return toError(registry, err)
	}
	// For a basic challenge (or a bearer token server that hands out
	// anonymous tokens) only an authenticated request proves anything.
	u := fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return toError(registry, err)
	}
	defer resp.Body.Close()
	if err := ggcrtransport.CheckError(resp, http.StatusOK); err != nil {
		return toError(registry, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// storeCredentials saves user/password for registry under dir.
func storeCredentials(ctx context.Context, dir, registry, user, password string) error {
	path := filepath.Join(dir, "config.json")
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		path = resolved // keep a symlinked config.json a symlink, as docker does
	}
	raw := map[string]json.RawMessage{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading docker config: %w", err)
	case len(strings.TrimSpace(string(b))) > 0:
		if err := json.Unmarshal(b, &raw); err != nil {
			return fmt.Errorf("parsing docker config %s: %w", path, err)
		}
	}
	cfg, err := readDockerConfig(path)
	if err != nil {
		return err
	}
	auths := map[string]json.RawMessage{}
	if a, ok := raw["auths"]; ok && string(a) != "null" {
		if err := json.Unmarshal(a, &auths); err != nil {
			return fmt.Errorf("parsing auths in docker config %s: %w", path, err)
		}
	}

	key := authKey(registry)
	entry := dockerAuth{Auth: base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
	helper := cfg.CredHelpers[registry]
	if helper == "" {
		helper = cfg.CredsStore
	}
	if helper != "" {
		if err := helperStore(ctx, helper, key, user, password); err != nil {
			return fmt.Errorf("storing credentials in docker-credential-%s: %w", helper, err)
		}
		entry = dockerAuth{} // docker leaves an empty entry as a marker
	}
	e, err := json.Marshal(entry)
	if err != nil {
		return err
	}
	auths[key] = e
	a, err := json.Marshal(auths)
	if err != nil {
		return err
	}
	raw["auths"] = a
	out, err := json.MarshalIndent(raw, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating docker config dir: %w", err)
	}
	if err := atomicfile.Write(path, append(out, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing docker config: %w", err)
	}
	return nil
}

// scrubSecret makes sure secret cannot appear in err's message, even if a
// registry or helper echoed it back.
func scrubSecret(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	var e *transport.Error
	if errors.As(err, &e) {
		e.Message = strings.ReplaceAll(e.Message, secret, "REDACTED")
		e.URL = strings.ReplaceAll(e.URL, secret, "REDACTED")
		if !strings.Contains(err.Error(), secret) {
			return err
		}
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "REDACTED"))
}
