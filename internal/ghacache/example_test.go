package ghacache_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/kiln-build/kiln/internal/ghacache"
)

// A server on a directory, asked over v2 for an entry it does not have.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "ghacache")
	defer os.RemoveAll(dir)
	h, err := ghacache.New(ghacache.Options{Dir: dir, Token: "rw-token"})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h) // a runner would use ACTIONS_RESULTS_URL=srv.URL+"/"
	defer srv.Close()

	req, _ := http.NewRequest("POST", srv.URL+"/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL",
		strings.NewReader(`{"key":"npm-linux-abc","restore_keys":["npm-linux-"],"version":"v"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer rw-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.StatusCode, " ", string(body))
	// Output: 200 {"ok":false,"signed_download_url":"","matched_key":""}
}
