package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/cachetest"
	"github.com/kiln-build/kiln/internal/cache/registry"
	"github.com/kiln-build/kiln/internal/remote"
	"github.com/kiln-build/kiln/internal/transport"
)

// storedRegistry is a plain docker-registry whose filesystem storage the
// test can reach.
type storedRegistry struct {
	addr string // 127.0.0.1:PORT
	data string // storage.filesystem.rootdirectory
}

// blobFile is where docker-registry's filesystem driver, with its storage
// in data, keeps a blob.
func blobFile(data string, d v1.Hash) string {
	return filepath.Join(data, "docker", "registry", "v2", "blobs", d.Algorithm, d.Hex[:2], d.Hex, "data")
}

// corruptBlob is the conformance suite's Corrupt for a docker-registry with
// its storage in data: it flips a byte of the blob file.
func corruptBlob(data string) func(t *testing.T, d v1.Hash) {
	return func(t *testing.T, d v1.Hash) {
		t.Helper()
		p := blobFile(data, d)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("corrupting %s: %v", d, err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// startStoredRegistry is startRegistry without extra configuration that
// also returns the storage directory.
func startStoredRegistry(t *testing.T) storedRegistry {
	t.Helper()
	addr, data := startRegistryData(t, "")
	return storedRegistry{addr: addr, data: data}
}

var conformanceRepo atomic.Int64

// registryFactory is the conformance factory of the type=registry backend
// over host (the in-package registry.Factory lives in a _test file).
func registryFactory(host string, client *remote.Client, corrupt func(t *testing.T, h v1.Hash)) cachetest.Factory {
	return func(t *testing.T) cachetest.Location {
		ref := fmt.Sprintf("%s/conformance/c%d:cache", host, conformanceRepo.Add(1))
		get := func() (*remote.Client, error) { return client, nil }
		return cachetest.Location{
			Table:   cache.NewTable(cache.Deps{Remote: get}, registry.Backend()),
			Import:  "type=registry,ref=" + ref,
			Export:  "type=registry,ref=" + ref,
			Corrupt: corrupt,
			Mounter: true,
		}
	}
}

// TestRegistryConformance runs the cache conformance suite against the
// real docker-registry; the corrupt-blob case flips a byte of the blob file
// in the registry's own storage.
func TestRegistryConformance(t *testing.T) {
	reg := startStoredRegistry(t)
	client, err := remote.New(remote.Options{RetryMaxWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cachetest.Run(t, registryFactory(reg.addr, client, corruptBlob(reg.data)))
}

// writeDockerConfig writes DIR/config.json with docker-format credentials
// for host and returns DIR.
func writeDockerConfig(t *testing.T, host, user, password string) string {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	writeFiles(t, dir, map[string]string{"config.json": fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)})
	return dir
}

// TestRegistryConformanceAuth runs the suite against docker-registry with
// htpasswd auth over TLS, with credentials from a docker config.json and the
// private CA (the corrupt-blob case flips a byte in its storage, as
// TestRegistryConformance does); without working credentials an export
// fails naming the registry and `kiln login`, and never shows the password.
func TestRegistryConformanceAuth(t *testing.T) {
	const user, password = "cache-user", "s3cr3t-Conf0rmance-pw"
	reg := startAuthRegistry(t, user, password)
	client, err := remote.New(remote.Options{
		CAFile:          reg.caFile,
		DockerConfigDir: writeDockerConfig(t, reg.addr, user, password),
		RetryMaxWait:    5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	cachetest.Run(t, registryFactory(reg.addr, client, corruptBlob(reg.data)))

	const wrong = "not-the-Password-77"
	noCreds := []struct {
		name      string
		configDir string
	}{
		{"no config", ""},
		{"no entry for the registry", writeDockerConfig(t, "other.example:5000", user, password)},
		{"wrong password", writeDockerConfig(t, reg.addr, user, wrong)},
	}
	for _, tt := range noCreds {
		t.Run(tt.name, func(t *testing.T) {
			c, err := remote.New(remote.Options{CAFile: reg.caFile, DockerConfigDir: tt.configDir, RetryMaxWait: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			loc := registryFactory(reg.addr, c, nil)(t)
			src := cachetest.NewBlobs()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = loc.Exporter(t).Export(ctx, cachetest.RandomManifest(src, 1, 2), src)
			if err == nil {
				t.Fatal("export without valid credentials succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, reg.addr) || !strings.Contains(msg, "kiln login") {
				t.Errorf("export error %q does not name %s and `kiln login`", msg, reg.addr)
			}
			for _, secret := range []string{password, wrong, base64.StdEncoding.EncodeToString([]byte(user + ":" + wrong))} {
				if strings.Contains(msg, secret) {
					t.Errorf("export error shows a secret: %q", msg)
				}
			}
			var rerr *transport.Error
			if !errors.As(err, &rerr) || rerr.Status != http.StatusUnauthorized {
				t.Errorf("export error %v: want a *transport.Error with status 401", err)
			}
			// An import without credentials is not a miss: it is an error
			// the build shows as a warning.
			_, _, err = loc.Importer(t).Import(ctx)
			if err == nil || cache.IsMiss(err) || !strings.Contains(err.Error(), "kiln login") {
				t.Errorf("import without valid credentials = %v, want a non-miss error saying `kiln login`", err)
			}
		})
	}
}
