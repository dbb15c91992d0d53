package gha

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// githubAPIName names the GitHub REST API in errors.
const githubAPIName = "github api"

// maxListPages bounds the listing (100 entries a page).
const maxListPages = 100

// lister lists the repository's kiln blob entries once, through the GitHub
// REST API (GET /repos/{repo}/actions/caches, as BuildKit does with
// repository= and ghtoken=), so an export learns which blobs exist with a
// few paged calls instead of one lookup per blob. Only entries of kiln's
// version, in a ref the runtime token may read, count: another branch's
// entry exists but this job's readers could not use it.
type lister struct {
	c      *client
	api    string
	repo   string
	token  string
	scopes []TokenScope

	once sync.Once
	set  map[string]bool
	err  error
}

// keys returns the lower-cased keys of existing blob entries.
func (l *lister) keys(ctx context.Context) (map[string]bool, error) {
	l.once.Do(func() { l.set, l.err = l.fetch(ctx) })
	return l.set, l.err
}

func (l *lister) readable(ref string) bool {
	if l.scopes == nil {
		return true
	}
	for _, s := range l.scopes {
		if s.Scope == ref || s.Scope == "" {
			return true
		}
	}
	return false
}

func (l *lister) fetch(ctx context.Context) (map[string]bool, error) {
	set := map[string]bool{}
	for page := 1; page <= maxListPages; page++ {
		q := url.Values{"key": {blobKeyPrefix}, "per_page": {"100"}, "page": {strconv.Itoa(page)}}
		u := strings.TrimRight(l.api, "/") + "/repos/" + l.repo + "/actions/caches?" + q.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, fmt.Errorf("gha: listing cache entries: %s", l.c.scrub(err.Error()))
		}
		req.Header.Set("Authorization", "Bearer "+l.token)
		req.Header.Set("Accept", "application/vnd.github+json")
		req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
		req.Header.Set("User-Agent", l.c.userAgent)
		resp, err := l.c.do(req, githubAPIName)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, l.c.newError(resp, githubAPIName)
		}
		var body struct {
			TotalCount int `json:"total_count"`
			Caches     []struct {
				Key     string `json:"key"`
				Ref     string `json:"ref"`
				Version string `json:"version"`
			} `json:"actions_caches"`
		}
		if err := l.c.decodeJSON(resp, &body); err != nil {
			return nil, err
		}
		for _, c := range body.Caches {
			if c.Version == entryVersion && l.readable(c.Ref) {
				set[strings.ToLower(c.Key)] = true
			}
		}
		if len(body.Caches) < 100 || page*100 >= body.TotalCount {
			return set, nil
		}
	}
	return set, nil
}
