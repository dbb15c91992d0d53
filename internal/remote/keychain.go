package remote

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// dockerConfig is the part of a docker config.json kiln reads.
type dockerConfig struct {
	Auths       map[string]dockerAuth `json:"auths"`
	CredsStore  string                `json:"credsStore"`
	CredHelpers map[string]string     `json:"credHelpers"`
}

type dockerAuth struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// configKeychain resolves credentials from DIR/config.json the way the
// docker CLI does: credHelpers[registry], else credsStore, else auths.
// It is written here rather than taken from authn.DefaultKeychain or
// docker/cli's configfile because both read environment variables
// (DOCKER_CONFIG, DOCKER_AUTH_CONFIG, REGISTRY_AUTH_FILE) and the latter
// prints to stderr; kiln reads the environment only in cli.
//
// The file is read on every Resolve, so a Login is seen at once.
type configKeychain struct {
	dir string
}

var _ authn.ContextKeychain = (*configKeychain)(nil)

func (k *configKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

func (k *configKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	if k.dir == "" {
		return authn.Anonymous, nil
	}
	cfg, err := readDockerConfig(filepath.Join(k.dir, "config.json"))
	if err != nil {
		return nil, err
	}
	reg := r.RegistryStr()
	key := authKey(reg)
	helper := cfg.CredHelpers[reg]
	if helper == "" {
		helper = cfg.CredsStore
	}
	if helper != "" {
		user, secret, found, err := helperGet(ctx, helper, key)
		if err != nil {
			return nil, fmt.Errorf("getting credentials for %s from docker-credential-%s: %w", reg, helper, err)
		}
		if found {
			if user == "<token>" {
				return authn.FromConfig(authn.AuthConfig{IdentityToken: secret}), nil
			}
			return authn.FromConfig(authn.AuthConfig{Username: user, Password: secret}), nil
		}
	}
	a, ok := lookupAuth(cfg.Auths, reg)
	if !ok {
		return authn.Anonymous, nil
	}
	ac := authn.AuthConfig{
		Username: a.Username, Password: a.Password,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
	}
	if a.Auth != "" {
		user, pass, err := decodeAuth(a.Auth)
		if err != nil {
			return nil, fmt.Errorf("reading credentials for %s in %s: %w", reg, filepath.Join(k.dir, "config.json"), err)
		}
		ac.Username, ac.Password = user, pass
	}
	if ac == (authn.AuthConfig{}) {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(ac), nil
}

// readDockerConfig reads path; a missing file is an empty config.
func readDockerConfig(path string) (dockerConfig, error) {
	var cfg dockerConfig
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("reading docker config: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return cfg, nil
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("parsing docker config %s: %w", path, err)
	}
	return cfg, nil
}

// authKey is the auths key docker uses for a registry: Docker Hub keeps its
// historical URL, everything else is HOST[:PORT].
func authKey(registry string) string {
	if registry == name.DefaultRegistry || registry == "docker.io" {
		return authn.DefaultAuthKey
	}
	return registry
}

// lookupAuth finds the entry for registry, accepting keys written as URLs
// ("https://host/v1/") as the docker CLI does.
func lookupAuth(auths map[string]dockerAuth, registry string) (dockerAuth, bool) {
	if a, ok := auths[authKey(registry)]; ok {
		return a, true
	}
	for k, a := range auths {
		if hostOf(k) == registry {
			return a, true
		}
	}
	return dockerAuth{}, false
}

func hostOf(key string) string {
	key = strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	host, _, _ := strings.Cut(key, "/")
	return host
}

func decodeAuth(s string) (user, pass string, err error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", "", errors.New("auth is not base64")
	}
	user, pass, ok := strings.Cut(string(b), ":")
	if !ok {
		return "", "", errors.New("auth is not user:password")
	}
	return user, strings.Trim(pass, "\x00"), nil
}

// helperCreds is the credential-helper protocol's JSON.
type helperCreds struct {
	ServerURL string `json:"ServerURL"`
	Username  string `json:"Username"`
	Secret    string `json:"Secret"`
}

// helperGet runs `docker-credential-HELPER get`. found is false when the
// helper has no entry for serverURL.
func helperGet(ctx context.Context, helper, serverURL string) (user, secret string, found bool, err error) {
	out, err := runHelper(ctx, helper, "get", serverURL)
	if err != nil {
		if strings.Contains(err.Error(), "credentials not found") {
			return "", "", false, nil
		}
		return "", "", false, err
	}
	var c helperCreds
	if err := json.Unmarshal(out, &c); err != nil {
		return "", "", false, errors.New("helper output is not JSON")
	}
	return c.Username, c.Secret, c.Username != "" || c.Secret != "", nil
}

// helperStore runs `docker-credential-HELPER store`.
func helperStore(ctx context.Context, helper, serverURL, user, secret string) error {
	in, err := json.Marshal(helperCreds{ServerURL: serverURL, Username: user, Secret: secret})
	if err != nil {
		return err
	}
	_, err = runHelper(ctx, helper, "store", string(in))
	return err
}

// runHelper runs a credential helper with input on stdin. Its output never
// enters an error: only the first line of what it wrote to stdout or stderr
// when it failed, which by protocol is its error message, not a secret.
func runHelper(ctx context.Context, helper, action, input string) ([]byte, error) {
	if helper == "" || strings.ContainsAny(helper, "/\\") || strings.HasPrefix(helper, ".") {
		return nil, fmt.Errorf("credential helper name %q is not a plain name", helper)
	}
	cmd := exec.CommandContext(ctx, "docker-credential-"+helper, action)
	cmd.Stdin = strings.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := firstLine(stdout.String())
		if msg == "" {
			msg = firstLine(stderr.String())
		}
		if msg != "" {
			return nil, fmt.Errorf("%w: %s", err, msg)
		}
		return nil, err
	}
	return stdout.Bytes(), nil
}

// maxHelperMessage bounds how much of a credential helper's output is kept.
const maxHelperMessage = 300

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > maxHelperMessage {
		s = s[:maxHelperMessage]
	}
	return s
}
