package gha_test

import (
	"fmt"

	"github.com/kiln-build/kiln/internal/cache/gha"
)

// A --cache-to type=gha,mode=max on a github.com runner: the runner's
// environment picks the v2 API, and ACTIONS_CACHE_MODE=read turns the
// export into a skip.
func ExampleParseExportConfig() {
	runner := map[string]string{
		gha.EnvRuntimeToken: "opaque-token",
		gha.EnvCacheURL:     "https://artifactcache.example/abc/",
		gha.EnvResultsURL:   "https://results.example/",
		gha.EnvServiceV2:    "true",
		gha.EnvCacheMode:    "read",
	}
	c, err := gha.ParseExportConfig(map[string]string{"mode": "max", "scope": "app"}, func(k string) string { return runner[k] })
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Version, c.URL, c.Scope, c.Timeout, c.Mode)
	fmt.Println(c.Skipped())
	// Output:
	// 2 https://results.example/ app 10m0s max
	// gha: skipped: ACTIONS_CACHE_MODE=read allows no export
}

// Without a token the entry is a usage error naming the variable.
func ExampleParseImportConfig() {
	_, err := gha.ParseImportConfig(nil, func(k string) string {
		if k == gha.EnvCacheURL {
			return "http://127.0.0.1:8080/"
		}
		return ""
	})
	fmt.Println(err)
	// Output:
	// cache type=gha: token: no runtime token: set ACTIONS_RUNTIME_TOKEN (a GitHub Actions runner does, for node and container actions) or token=
}
