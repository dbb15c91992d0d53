package gha

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/cachetest"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// TestVersionSelection covers gha-action.md §2 item 1 and buildx's
// defaulting rules (cache-protocols.md §1.3): which API and which URL.
func TestVersionSelection(t *testing.T) {
	const (
		v1URL = "https://artifactcache.example/abc/"
		v2URL = "https://results.example/"
	)
	tests := []struct {
		name        string
		attrs       map[string]string
		env         func(string) string
		wantVersion int
		wantURL     string
	}{
		{"v1 from ACTIONS_CACHE_URL", nil, env(EnvRuntimeToken, "t", EnvCacheURL, v1URL), 1, v1URL},
		{"v2 when ACTIONS_CACHE_SERVICE_V2 is true", nil,
			env(EnvRuntimeToken, "t", EnvCacheURL, v1URL, EnvResultsURL, v2URL, EnvServiceV2, "true"), 2, v2URL},
		{"ACTIONS_CACHE_SERVICE_V2 parses as a Go bool", nil,
			env(EnvRuntimeToken, "t", EnvCacheURL, v1URL, EnvResultsURL, v2URL, EnvServiceV2, "1"), 2, v2URL},
		{"ACTIONS_CACHE_SERVICE_V2 that is not a bool means v1", nil,
			env(EnvRuntimeToken, "t", EnvCacheURL, v1URL, EnvResultsURL, v2URL, EnvServiceV2, "yes"), 1, v1URL},
		{"results URL without the v2 switch is the v1 url", nil,
			env(EnvRuntimeToken, "t", EnvResultsURL, v2URL), 1, v2URL},
		{"GitHub's results host means v2", nil,
			env(EnvRuntimeToken, "t", EnvResultsURL, "https://results-receiver.actions.githubusercontent.com/"), 2,
			"https://results-receiver.actions.githubusercontent.com/"},
		{"version=1 wins over the v2 switch", map[string]string{"version": "1"},
			env(EnvRuntimeToken, "t", EnvCacheURL, v1URL, EnvResultsURL, v2URL, EnvServiceV2, "true"), 1, v1URL},
		{"version=2 takes the results URL", map[string]string{"version": "2"},
			env(EnvRuntimeToken, "t", EnvCacheURL, v1URL, EnvResultsURL, v2URL), 2, v2URL},
		{"url_v2 attribute", map[string]string{"url_v2": "http://127.0.0.1:9/", "token": "x"}, env(), 2, "http://127.0.0.1:9/"},
		{"url attribute wins over the environment", map[string]string{"url": "http://127.0.0.1:8/"},
			env(EnvRuntimeToken, "t", EnvCacheURL, v1URL), 1, "http://127.0.0.1:8/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseImportConfig(tt.attrs, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.Version != tt.wantVersion || c.URL != tt.wantURL {
				t.Errorf("got v%d %s, want v%d %s", c.Version, c.URL, tt.wantVersion, tt.wantURL)
			}
		})
	}
}

func TestParse(t *testing.T) {
	ok := env(EnvRuntimeToken, "t", EnvCacheURL, "http://127.0.0.1:1/")
	imp := func(getenv func(string) string) func(map[string]string) error {
		return func(a map[string]string) error { _, err := ParseImportConfig(a, getenv); return err }
	}
	exp := func(getenv func(string) string) func(map[string]string) error {
		return func(a map[string]string) error { _, err := ParseExportConfig(a, getenv); return err }
	}
	cachetest.RunParse(t, imp(ok),
		[]map[string]string{
			{},
			{"scope": "main", "timeout": "30s", "ignore-error": "true"},
			{"repository": "o/r", "ghtoken": "g"},
			{"version": "1"},
		},
		[]cachetest.BadAttrs{
			{Attrs: map[string]string{"colour": "blue"}, Want: `"colour"`},
			{Attrs: map[string]string{"mode": "max"}, Want: "mode"},
			{Attrs: map[string]string{"timeout": "soon"}, Want: "timeout"},
			{Attrs: map[string]string{"timeout": "-1s"}, Want: "timeout"},
			{Attrs: map[string]string{"version": "3"}, Want: "version"},
			{Attrs: map[string]string{"scope": "a,b"}, Want: "scope"},
			{Attrs: map[string]string{"scope": "a#b"}, Want: "scope"},
			{Attrs: map[string]string{"scope": ""}, Want: "scope"},
			{Attrs: map[string]string{"repository": "o/r"}, Want: "ghtoken"},
			{Attrs: map[string]string{"repository": "nope", "ghtoken": "g"}, Want: "repository"},
			{Attrs: map[string]string{"url": "ftp://x/"}, Want: "url"},
		})
	cachetest.RunParse(t, exp(ok),
		[]map[string]string{
			{"mode": "max", "ignore-error": "true"},
			{"compression": "zstd", "compression-level": "3", "force-compression": "true"},
			{"oci-mediatypes": "true", "image-manifest": "true"},
		},
		[]cachetest.BadAttrs{
			{Attrs: map[string]string{"mode": "most"}, Want: "mode"},
			{Attrs: map[string]string{"compression": "lz4"}, Want: "compression"},
			{Attrs: map[string]string{"dest": "/x"}, Want: `"dest"`},
		})
	// No token or no URL names the attribute and the variable.
	cachetest.RunParse(t, imp(env(EnvCacheURL, "http://127.0.0.1:1/")), nil,
		[]cachetest.BadAttrs{{Attrs: map[string]string{}, Want: EnvRuntimeToken}, {Attrs: map[string]string{}, Want: "token"}})
	cachetest.RunParse(t, exp(env(EnvRuntimeToken, "t")), nil,
		[]cachetest.BadAttrs{{Attrs: map[string]string{}, Want: EnvCacheURL}, {Attrs: map[string]string{}, Want: "url"}})
	cachetest.RunParse(t, exp(env(EnvRuntimeToken, "t", EnvCacheURL, "http://127.0.0.1:1/")), nil,
		[]cachetest.BadAttrs{{Attrs: map[string]string{"version": "2"}, Want: EnvResultsURL}})
}

func TestParseValues(t *testing.T) {
	c, err := ParseExportConfig(map[string]string{"scope": "app", "timeout": "90s", "mode": "max", "repository": "o/r", "ghtoken": "gh"},
		env(EnvRuntimeToken, "tok", EnvCacheURL, "http://127.0.0.1:1/"))
	if err != nil {
		t.Fatal(err)
	}
	want := ExportConfig{
		Config: Config{Version: 1, URL: "http://127.0.0.1:1/", Token: "tok", Scope: "app", Timeout: 90 * time.Second,
			Repository: "o/r", GHToken: "gh"},
		ExportOptions: cache.ExportOptions{Mode: cache.ModeMax, Compression: "gzip"},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	d, err := ParseImportConfig(nil, env(EnvRuntimeToken, "tok", EnvCacheURL, "http://127.0.0.1:1/"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Scope != DefaultScope || d.Timeout != DefaultTimeout {
		t.Errorf("defaults: scope %q timeout %v, want %q %v", d.Scope, d.Timeout, DefaultScope, DefaultTimeout)
	}
	if got := SecretAttrs(); !cmp.Equal(got, []string{AttrToken, AttrGHToken}) {
		t.Errorf("SecretAttrs() = %v", got)
	}
}

// A bad URL attribute is named without its query (a signature).
func TestParseRedactsURL(t *testing.T) {
	_, err := ParseImportConfig(map[string]string{"url": "ftp://h/p?sig=SECRET"}, env(EnvRuntimeToken, "t"))
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("got %v, want an error without the signature", err)
	}
}
