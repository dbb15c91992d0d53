package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// authRegistry is a docker-registry that wants a password, over TLS with a
// private CA.
type authRegistry struct {
	addr   string // 127.0.0.1:PORT
	data   string // storage.filesystem.rootdirectory
	caFile string // PEM of the CA that signed its certificate
	caPool *x509.CertPool
}

// startAuthRegistry starts docker-registry with htpasswd auth (user,
// password, bcrypt through the htpasswd binary) over TLS.
func startAuthRegistry(t *testing.T, user, password string) authRegistry {
	t.Helper()
	imagetest.Require(t, "docker-registry", "htpasswd")
	dir := t.TempDir()
	pki := imagetest.NewPKI(t)
	caFile, certFile, keyFile := pki.WriteFiles(t, dir)
	pool := pki.Pool
	out, err := exec.Command("htpasswd", "-Bbn", user, password).Output()
	if err != nil {
		t.Fatalf("htpasswd: %v", err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, bytes.TrimSpace(out), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf(`  tls:
    certificate: %s
    key: %s
auth:
  htpasswd:
    realm: kiln
    path: %s
`, certFile, keyFile, htpasswd)
	addr, data := startRegistryData(t, extra)
	reg := authRegistry{addr: addr, data: data, caFile: caFile, caPool: pool}
	// startRegistry only waits for the port with TLS: wait for the /v2/
	// challenge too.
	client := reg.httpClient()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("https://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("GET /v2/ without credentials: %s, want 401", resp.Status)
			}
			return reg
		}
		if time.Now().After(deadline) {
			t.Fatalf("the TLS registry on %s does not answer: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r authRegistry) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: r.caPool}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// dockerConfig is the part of config.json the test reads.
type dockerConfig struct {
	Auths map[string]struct {
		Auth string `json:"auth"`
	} `json:"auths"`
}

// TestRegistryAuth: pushing to a registry with htpasswd auth over TLS
// fails with a hint to log in, works after kiln login (or with a
// config.json written by hand), and never shows the password.
func TestRegistryAuth(t *testing.T) {
	_, base := setup(t)
	const user, password = "u", "pa55-w0rd-Kq9"
	reg := startAuthRegistry(t, user, password)
	ctxDir := appContext(t, base)

	// Each kiln state dir has its own DOCKER_CONFIG beside it.
	parent := t.TempDir()
	state := filepath.Join(parent, "state")
	configFile := filepath.Join(parent, "docker-config", "config.json")
	tag := reg.addr + "/app:1"
	var outputs []string
	check := func(r result) result {
		outputs = append(outputs, r.stdout, r.stderr)
		return r
	}

	// Not logged in: the push fails, naming the registry and kiln login.
	r := check(kiln(t, state, nil, "build", "--progress", "plain", "--push", "-t", tag, "--registry-ca", reg.caFile, ctxDir))
	if r.code != 1 {
		t.Errorf("push without login: exit %d, want 1\n%s", r.code, r.stderr)
	}
	last := lastLine(r.stderr)
	if !strings.Contains(last, reg.addr) || !strings.Contains(last, "kiln login") {
		t.Errorf("push without login: last line %q does not name %s and `kiln login`", last, reg.addr)
	}
	if r.stdout != "" {
		t.Errorf("a failed push printed %q on stdout", r.stdout)
	}

	// Without the CA the certificate is refused, with a hint.
	r = check(kilnStdin(t, state, password+"\n", nil, "login", reg.addr, "-u", user, "--password-stdin"))
	if r.code == 0 || !strings.Contains(r.stderr, "--registry-ca") {
		t.Errorf("login without the CA: exit %d, want a failure that mentions --registry-ca\n%s", r.code, r.stderr)
	}
	// A wrong password is refused and nothing is stored.
	r = check(kilnStdin(t, state, "wrong-password\n", nil, "login", reg.addr, "-u", user, "--password-stdin", "--registry-ca", reg.caFile))
	if r.code != 1 || !strings.Contains(r.stderr, reg.addr) {
		t.Errorf("login with a wrong password: exit %d, want 1 naming %s\n%s", r.code, reg.addr, r.stderr)
	}
	if _, err := os.Stat(configFile); err == nil {
		t.Errorf("a failed login wrote %s", configFile)
	}

	// kiln login stores the credentials in docker's format.
	r = check(kilnStdin(t, state, password+"\n", nil, "--debug", "login", reg.addr, "-u", user, "--password-stdin", "--registry-ca", reg.caFile))
	if r.code != 0 {
		t.Fatalf("kiln login: exit %d\n%s", r.code, r.stderr)
	}
	b, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatalf("kiln login wrote no config.json: %v", err)
	}
	var cfg dockerConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("config.json: %v\n%s", err, b)
	}
	if got, want := cfg.Auths[reg.addr].Auth, base64.StdEncoding.EncodeToString([]byte(user+":"+password)); got != want {
		t.Errorf("config.json auths[%s].auth = %q, want %q", reg.addr, got, want)
	}
	if fi, _ := os.Stat(configFile); fi != nil && fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("config.json mode %v: readable by others", fi.Mode())
	}

	// Now the push works, and the registry has the image kiln printed.
	r = check(mustKiln(t, state, nil, "--debug", "build", "--progress", "plain", "--push", "-t", tag, "--registry-ca", reg.caFile, ctxDir))
	digest := strings.TrimSpace(r.stdout)
	assertPushed(t, reg, tag, user, password, digest)

	// A config.json written by hand in docker's format works too.
	parent2 := t.TempDir()
	state2 := filepath.Join(parent2, "state")
	handCfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}},"psFormat":"table"}`, reg.addr,
		base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
	writeFiles(t, filepath.Join(parent2, "docker-config"), map[string]string{"config.json": handCfg})
	tag2 := reg.addr + "/app:2"
	r = check(mustKiln(t, state2, nil, "build", "--progress", "plain", "--push", "-t", tag2, "--registry-ca", reg.caFile, ctxDir))
	assertPushed(t, reg, tag2, user, password, strings.TrimSpace(r.stdout))

	// A second login keeps the other keys of the file.
	r = check(kilnStdin(t, state2, password+"\n", nil, "login", reg.addr, "-u", user, "--password-stdin", "--registry-ca", reg.caFile))
	if r.code != 0 {
		t.Errorf("login over a hand-written config: exit %d\n%s", r.code, r.stderr)
	}
	if got := readFile(t, filepath.Join(parent2, "docker-config", "config.json")); !strings.Contains(got, `"psFormat"`) {
		t.Errorf("login dropped the other keys of config.json:\n%s", got)
	}

	for _, o := range outputs {
		if strings.Contains(o, password) {
			t.Errorf("the password appears in kiln's output:\n%s", o)
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndex(s, "\n")+1:]
}

// assertPushed pulls tag from reg with the credentials and checks it is the
// image with digest.
func assertPushed(t *testing.T, reg authRegistry, tag, user, password, digest string) {
	t.Helper()
	ref, err := name.ParseReference(tag)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: user, Password: password}),
		remote.WithTransport(reg.httpClient().Transport))
	if err != nil {
		t.Fatalf("pulling %s: %v", tag, err)
	}
	imagetest.Check(t, img)
	if d, _ := img.Digest(); d.String() != digest {
		t.Errorf("%s is %s, kiln printed %s", tag, d, digest)
	}
}
