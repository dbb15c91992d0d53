package gha

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/cache"
)

// Attribute names of type=gha, as buildx spells them.
const (
	AttrURL        = "url"
	AttrURLV2      = "url_v2"
	AttrToken      = "token"
	AttrScope      = "scope"
	AttrTimeout    = "timeout"
	AttrVersion    = "version"
	AttrRepository = "repository"
	AttrGHToken    = "ghtoken"
)

// Environment variables the runner sets, read through the injected getenv.
const (
	EnvCacheURL     = "ACTIONS_CACHE_URL"
	EnvResultsURL   = "ACTIONS_RESULTS_URL"
	EnvRuntimeToken = "ACTIONS_RUNTIME_TOKEN"
	EnvServiceV2    = "ACTIONS_CACHE_SERVICE_V2"
	// EnvCacheMode gates import and export as @actions/cache 6.x does:
	// read, write-only, none (anything else allows both).
	EnvCacheMode = "ACTIONS_CACHE_MODE"
)

// Defaults of the optional attributes.
const (
	DefaultScope   = "kiln"
	DefaultTimeout = 10 * time.Minute
)

// SecretAttrs returns the attributes whose values are credentials and must
// be redacted wherever a spec is shown.
func SecretAttrs() []string { return []string{AttrToken, AttrGHToken} }

// resultsHost is the github.com v2 service; a url naming it means v2 when
// nothing else decides (BuildKit's rule).
const resultsHost = "results-receiver.actions.githubusercontent.com"

// Config is what both directions share: which service, how to reach it and
// where in it kiln's entries live.
type Config struct {
	// Version is the protocol: 1 (the REST API under _apis/artifactcache)
	// or 2 (the Twirp CacheService with blob-storage uploads).
	Version int
	// URL is the base URL of the service Version speaks.
	URL string
	// Token is the runtime token, sent as a bearer token. Secret.
	Token string
	// Scope names kiln's cache inside the repository's entries (not the
	// git-ref scope, which the service applies itself).
	Scope string
	// Timeout bounds each store operation, retries included.
	Timeout time.Duration
	// Repository (owner/name), with GHToken, lets an export list the
	// existing blob entries with one paged call of the GitHub REST API
	// instead of one lookup per blob.
	Repository string
	// GHToken is the GitHub token for that listing. Secret.
	GHToken string
	// Access is what ACTIONS_CACHE_MODE and the token allow.
	Access Access
}

// ImportConfig is a parsed --cache-from type=gha.
type ImportConfig struct {
	// Config is what both directions share.
	Config
	// IgnoreError is accepted as buildx does; a failed import is always a
	// warning and a miss.
	IgnoreError bool
}

// ExportConfig is a parsed --cache-to type=gha.
type ExportConfig struct {
	// Config is what both directions share.
	Config
	// ExportOptions are mode, ignore-error and the compression attributes.
	cache.ExportOptions
}

// Skipped returns why this import must not run (an error wrapping
// ErrSkipped), or nil.
func (c ImportConfig) Skipped() error { return c.Access.importSkipped() }

// Skipped returns why this export must not run (an error wrapping
// ErrSkipped or ErrReadOnly), or nil.
func (c ExportConfig) Skipped() error { return c.Access.exportSkipped() }

// ParseImportConfig reads --cache-from type=gha attributes, taking the
// runner's environment (through getenv) for what they leave out. An unknown
// attribute, a bad value, or no token or URL from either source is an error
// naming the attribute and the variable.
func ParseImportConfig(attrs map[string]string, getenv func(string) string) (ImportConfig, error) {
	imp, err := cache.NewTable(cache.Deps{Getenv: getenv}, Backend()).ParseImport(cache.Spec{Type: Type, Attrs: attrs, Raw: "type=" + Type})
	if err != nil {
		return ImportConfig{}, err
	}
	return imp.Config.(ImportConfig), nil
}

// Type is the spec type of the backend.
const Type = "gha"

// Backend is type=gha in the cache table. Its environment defaults come
// through the table's Deps.Getenv; its requests go through Deps.Transport
// when set.
func Backend() cache.Backend {
	return cache.Backend{
		Type:        Type,
		Attrs:       []string{AttrURL, AttrURLV2, AttrToken, AttrScope, AttrTimeout, AttrVersion, AttrRepository, AttrGHToken, cache.AttrOCIMediaTypes, cache.AttrImageManifest},
		Secret:      SecretAttrs(),
		ParseImport: func(a *cache.Attrs) (cache.ImportConfig, error) { return parseImport(a), nil },
		ParseExport: func(a *cache.Attrs) (cache.ExportConfig, error) { return parseExport(a), nil },
	}
}

func parseImport(a *cache.Attrs) ImportConfig {
	c := ImportConfig{Config: parseConfig(a, a.Getenv)}
	c.IgnoreError = a.Bool(cache.AttrIgnoreError, false)
	return c
}

func parseExport(a *cache.Attrs) ExportConfig {
	c := ExportConfig{Config: parseConfig(a, a.Getenv)}
	c.ExportOptions = a.Export()
	// Accepted for buildx compatibility: kiln always writes an OCI image
	// manifest with OCI media types, the shape both defaults choose.
	a.Bool(cache.AttrOCIMediaTypes, true)
	a.Bool(cache.AttrImageManifest, true)
	return c
}

// NewImporter returns the importer of the configured cache.
func (c ImportConfig) NewImporter(d cache.Deps) (cache.Importer, error) {
	return NewImporter(c, optionsOf(d)), nil
}

// NewExporter returns the exporter of the configured cache.
func (c ExportConfig) NewExporter(d cache.Deps) (cache.Exporter, error) {
	return NewExporter(c, optionsOf(d)), nil
}

func optionsOf(d cache.Deps) Options {
	return Options{Transport: d.Transport}
}

// ParseExportConfig reads --cache-to type=gha attributes, as
// ParseImportConfig does, plus mode, ignore-error and the compression
// attributes.
func ParseExportConfig(attrs map[string]string, getenv func(string) string) (ExportConfig, error) {
	exp, err := cache.NewTable(cache.Deps{Getenv: getenv}, Backend()).ParseExport(cache.Spec{Type: Type, Attrs: attrs, Raw: "type=" + Type})
	if err != nil {
		return ExportConfig{}, err
	}
	return exp.Config.(ExportConfig), nil
}

// parseConfig reads the attributes both directions share and fills the
// rest from the environment as buildx and BuildKit do (cache-protocols.md
// §1.3): token from ACTIONS_RUNTIME_TOKEN; url from ACTIONS_CACHE_URL, else
// ACTIONS_RESULTS_URL; url_v2 from ACTIONS_RESULTS_URL when the version is
// 2 by attribute or by ACTIONS_CACHE_SERVICE_V2. Then v2 is used when
// version is not 1 and url_v2 is known, v1 with url otherwise, and without
// a version a url on GitHub's results host means v2.
func parseConfig(a *cache.Attrs, getenv func(string) string) Config {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	c := Config{
		Scope:      a.String(AttrScope, DefaultScope),
		Repository: a.String(AttrRepository, ""),
		GHToken:    a.String(AttrGHToken, ""),
	}
	if c.Scope == "" || strings.ContainsAny(c.Scope, ",#") || len(c.Scope) > 200 {
		a.Fail(AttrScope, "%q is not a scope: 1 to 200 characters, no comma or #", c.Scope)
	}
	if c.Repository != "" && !validRepository(c.Repository) {
		a.Fail(AttrRepository, "%q is not owner/name", c.Repository)
	}
	if (c.Repository == "") != (c.GHToken == "") {
		a.Fail(AttrRepository, "repository and ghtoken go together (one is missing)")
	}
	c.Timeout = DefaultTimeout
	if v := a.String(AttrTimeout, ""); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			a.Fail(AttrTimeout, "%q is not a positive duration such as 10m", v)
		}
		c.Timeout = d
	}
	version := a.String(AttrVersion, "")
	if version != "" && version != "1" && version != "2" {
		a.Fail(AttrVersion, "%q is not 1 or 2", version)
	}

	c.Token = a.String(AttrToken, "")
	if c.Token == "" {
		c.Token = getenv(EnvRuntimeToken)
	}
	if c.Token == "" {
		a.Fail(AttrToken, "no runtime token: set %s (a GitHub Actions runner does, for node and container actions) or token=", EnvRuntimeToken)
	}
	c.Version, c.URL = pickService(a, getenv, version)
	c.Access = newAccess(getenv(EnvCacheMode), c.Token)
	return c
}

// pickService chooses the API and its URL from the attributes and the
// environment (see parseConfig).
func pickService(a *cache.Attrs, getenv func(string) string, version string) (v int, u string) {
	u = a.String(AttrURL, "")
	if u == "" {
		u = getenv(EnvCacheURL)
	}
	if u == "" {
		u = getenv(EnvResultsURL)
	}
	v2Env, _ := strconv.ParseBool(getenv(EnvServiceV2))
	u2 := a.String(AttrURLV2, "")
	if u2 == "" && (version == "2" || (version == "" && v2Env)) {
		u2 = getenv(EnvResultsURL)
	}
	switch {
	case version != "1" && u2 != "":
		v, u = 2, u2
	case version == "2":
		u = ""
		a.Fail(AttrURLV2, "version=2 needs a v2 URL: set %s or url_v2=", EnvResultsURL)
	case u != "":
		v = 1
		if version == "" && strings.Contains(u, resultsHost) {
			v = 2
		}
	default:
		u = ""
		a.Fail(AttrURL, "no cache service URL: set %s (v1), or %s with %s=true (v2), or url=", EnvCacheURL, EnvResultsURL, EnvServiceV2)
	}
	if u != "" {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			key := AttrURL
			if v == 2 {
				key = AttrURLV2
			}
			a.Fail(key, "%q is not an http(s) URL", redactURLString(u))
		}
	}
	return v, u
}

func validRepository(s string) bool {
	owner, name, ok := strings.Cut(s, "/")
	return ok && owner != "" && name != "" && !strings.ContainsAny(name, "/?#") && !strings.ContainsAny(owner, "?#")
}
