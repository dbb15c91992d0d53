package gha

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/transport"
)

// Key layout. Every kiln entry carries entryVersion, so kiln's entries
// never match those of actions/cache or BuildKit (the service matches keys
// only within one version).
const (
	// entryVersion is sha256("kiln-gha-cache-1").
	entryVersion = "82de97bd0b8a26ab3fbeabe890ee1949cc7eb9ad77d5f68239033151030b5286"
	// blobKeyPrefix + digest is a blob's key: content-addressed, so an
	// immutable entry is never a problem.
	blobKeyPrefix = "kiln-blob-1-"
	// rootKeyPrefix + scope + "#" + N is the root (the OCI image manifest
	// an import starts from) of a scope, N = 1, 2, ...
	rootKeyPrefix = "kiln-root-1-"
)

// Limits of the store.
const (
	// maxRootSize caps the root read on import.
	maxRootSize = 16 << 20
	// maxRootProbes bounds the forward checks for a root newer than the
	// one the service called newest.
	maxRootProbes = 24
	// maxRootAttempts bounds how many numbers SetRoot tries when the next
	// ones are taken.
	maxRootAttempts = 8
)

// Defaults of Options.
const (
	// DefaultParallel is how many uploads run at once.
	DefaultParallel = 4
	// DefaultEntriesPerMinute keeps one build under GitHub's 200 new
	// entries per minute per repository, with room for a root and retries.
	DefaultEntriesPerMinute = 180
	// DefaultChunkSize is the size of one v1 PATCH.
	DefaultChunkSize = 16 << 20
	// DefaultSingleShotLimit is the largest v2 blob sent with one Put Blob.
	DefaultSingleShotLimit = 8 << 20
	// DefaultBlockSize is the size of one v2 Put Block.
	DefaultBlockSize = 8 << 20
	// DefaultGitHubAPI is the REST API that lists existing entries.
	DefaultGitHubAPI = "https://api.github.com"
)

// Clock is the time source of the entry limiter, injected so tests need
// not wait.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options are the store's injected parts and tunables. The zero value
// works: every zero field means its default.
type Options struct {
	// Transport sends every request. Retrying 429 and 5xx (with
	// Retry-After and back-off) is its job, not the store's. Nil means a
	// transport.Transport of its own whose retry budget is the config's
	// timeout; a program passes one shared Transport, so that requests to
	// a throttled host share one back-off.
	Transport http.RoundTripper
	// Clock paces new entries; nil means the system clock.
	Clock Clock
	// Parallel bounds the uploads in flight; 0 means DefaultParallel.
	Parallel int
	// EntriesPerMinute bounds the entries created in any 60 seconds; 0
	// means DefaultEntriesPerMinute (GitHub allows 200 per repository).
	EntriesPerMinute int
	// ChunkSize is the size of one v1 PATCH; 0 means DefaultChunkSize.
	ChunkSize int64
	// SingleShotLimit is the largest v2 blob sent with one Put Blob;
	// larger ones go as Put Block + Put Block List. 0 means
	// DefaultSingleShotLimit.
	SingleShotLimit int64
	// BlockSize is the size of one Put Block; 0 means DefaultBlockSize.
	BlockSize int64
	// GitHubAPI is the REST API used to list existing blobs when the
	// config has Repository and GHToken; "" means DefaultGitHubAPI.
	GitHubAPI string
	// UserAgent is sent with every request; "" means "kiln".
	UserAgent string
}

// Store keeps a cache in the GitHub Actions cache service: it is the blob
// core (cache.BlobStore) that package cache turns into an importer and an
// exporter. Its methods may be called concurrently.
type Store struct {
	cfg    Config
	c      *client
	svc    service
	limit  *limiter
	sem    chan struct{}
	prefix string // rootKeyPrefix + scope + "#"
	list   *lister

	mu sync.Mutex
	// known are blobs this store knows to be there: put by it, or listed
	// by the root it read (an export reads the root before writing).
	known map[v1.Hash]bool
	// rootN is the number of the newest root seen (0: none); rootRead
	// says whether a lookup happened.
	rootN    int
	rootRead bool
}

var (
	_ cache.BlobStore = (*Store)(nil)
	_ cache.Importer  = importer{}
	_ cache.Exporter  = exporter{}
)

// New returns the store of a parsed config.
func New(c Config, o Options) *Store {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if o.Transport == nil {
		o.Transport = transport.New(transport.Options{RetryBudget: c.Timeout})
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	o.Parallel = cmpOr(o.Parallel, DefaultParallel)
	o.EntriesPerMinute = cmpOr(o.EntriesPerMinute, DefaultEntriesPerMinute)
	o.ChunkSize = cmpOr(o.ChunkSize, DefaultChunkSize)
	o.SingleShotLimit = cmpOr(o.SingleShotLimit, DefaultSingleShotLimit)
	o.BlockSize = cmpOr(o.BlockSize, DefaultBlockSize)
	o.GitHubAPI = cmpOr(o.GitHubAPI, DefaultGitHubAPI)
	o.UserAgent = cmpOr(o.UserAgent, "kiln")
	cl := &client{
		http:      &http.Client{Transport: o.Transport},
		token:     c.Token,
		userAgent: o.UserAgent,
		secrets:   []string{c.Token, c.GHToken},
	}
	s := &Store{
		cfg:    c,
		c:      cl,
		limit:  newLimiter(o.EntriesPerMinute, time.Minute, o.Clock),
		sem:    make(chan struct{}, o.Parallel),
		prefix: rootKeyPrefix + c.Scope + "#",
		known:  map[v1.Hash]bool{},
	}
	if c.Version == 2 {
		s.svc = newTwirp(cl, c.URL, entryVersion, blobOptions{singleShot: o.SingleShotLimit, block: o.BlockSize})
	} else {
		v := newREST(cl, c.URL, entryVersion, o.ChunkSize)
		// The v1 base path may hold a credential (nektos/act's token).
		if u, err := url.Parse(v.base); err == nil {
			cl.hideHost, cl.hidePath = u.Host, strings.TrimSuffix(u.Path, "_apis/artifactcache/")
		}
		s.svc = v
	}
	if c.Repository != "" && c.GHToken != "" {
		s.list = &lister{c: cl, api: o.GitHubAPI, repo: c.Repository, token: c.GHToken, scopes: c.Access.Scopes}
	}
	return s
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// NewImporter returns the importer of a type=gha cache. An import that
// ACTIONS_CACHE_MODE turns off returns an error wrapping ErrSkipped; a
// scope with no cache yet is cache.ErrNotFound. It counts its requests
// (cache.RequestCounter), the later reads of its fetcher included.
func NewImporter(c ImportConfig, o Options) cache.Importer {
	return cache.CountedImporter(importer{skip: c.Skipped(), next: cache.NewImporter(New(c.Config, o))})
}

// NewExporter returns the exporter of a type=gha cache. An export that
// ACTIONS_CACHE_MODE or the token's claims forbid returns an error
// wrapping ErrSkipped or ErrReadOnly without a request; a 403 on the first
// write returns ErrReadOnly too. It counts its requests
// (cache.RequestCounter).
func NewExporter(c ExportConfig, o Options) cache.Exporter {
	return cache.CountedExporter(exporter{skip: c.Skipped(), next: cache.NewExporter(New(c.Config, o))})
}

type importer struct {
	skip error
	next cache.Importer
}

func (i importer) Import(ctx context.Context) (*cache.Manifest, cache.Fetcher, error) {
	if i.skip != nil {
		return nil, nil, i.skip
	}
	return i.next.Import(ctx)
}

type exporter struct {
	skip error
	next cache.Exporter
}

func (e exporter) Export(ctx context.Context, m *cache.Manifest, src cache.Fetcher) error {
	if e.skip != nil {
		return e.skip
	}
	return e.next.Export(ctx, m, src)
}

// EmbedsConfig tells package cache to carry the cache manifest inside the
// root's config descriptor (its data field): an import is then one lookup
// and one download, and no entry is spent on the config blob.
func (s *Store) EmbedsConfig() bool { return true }

// op bounds one operation by the config's timeout.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

func blobKey(h v1.Hash) string { return blobKeyPrefix + h.String() }

// Fetch opens a blob's entry. A missing entry is cache.ErrNotFound. The
// reader checks the length and the digest, resumes a broken download with
// ranged reads, and holds the operation's deadline until closed.
func (s *Store) Fetch(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	ctx, cancel := s.op(ctx)
	key := blobKey(desc.Digest)
	lookup := func(ctx context.Context) (entry, error) { return s.lookupExact(ctx, key) }
	e, err := lookup(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	r := &resumer{ctx: ctx, c: s.c, e: e, azure: s.svc.azure(), size: desc.Size, reopen: lookup}
	// Open now, so a vanished blob is a miss here rather than on Read.
	if err := r.start(); err != nil {
		cancel()
		return nil, err
	}
	return &opReader{ReadCloser: cache.VerifyReader(r, desc.Digest, desc.Size), cancel: cancel}, nil
}

// lookupExact finds the entry stored under key itself: a service that
// matches by prefix could answer with a longer key.
func (s *Store) lookupExact(ctx context.Context, key string) (entry, error) {
	e, err := s.svc.lookup(ctx, key)
	if err != nil {
		return entry{}, err
	}
	if !strings.EqualFold(e.Key, key) {
		return entry{}, fmt.Errorf("gha: no entry %s (the service matched %s): %w", key, e.Key, cache.ErrNotFound)
	}
	return e, nil
}

// opReader cancels its operation's context on Close.
type opReader struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (r *opReader) Close() error {
	err := r.ReadCloser.Close()
	r.cancel()
	return err
}

// Has reports whether a blob's entry exists. A blob the root lists, or
// this store put, is known without a request; with repository and ghtoken
// one paged listing answers for every blob; otherwise it is one lookup.
func (s *Store) Has(ctx context.Context, desc v1.Descriptor) (bool, error) {
	if s.isKnown(desc.Digest) {
		return true, nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	key := blobKey(desc.Digest)
	if s.list != nil {
		if keys, err := s.list.keys(ctx); err == nil {
			return keys[strings.ToLower(key)], nil
		}
		// A listing that fails costs lookups, not the export.
	}
	_, err := s.lookupExact(ctx, key)
	if errors.Is(err, cache.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Put writes a blob's entry. An entry that is already there (409,
// {"ok":false}) is success; a 403 is ErrReadOnly. At most Options.Parallel
// uploads run at once, and new entries are paced by the limiter.
func (s *Store) Put(ctx context.Context, desc v1.Descriptor, r io.Reader) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := s.limit.wait(ctx); err != nil {
		return err
	}
	err := s.svc.save(ctx, blobKey(desc.Digest), desc.Size, r)
	if err != nil && !isExists(err) {
		return readOnly(err)
	}
	s.markKnown(desc.Digest)
	return nil
}

// readOnly turns a refused write into ErrReadOnly.
func readOnly(err error) error {
	var e *transport.Error
	if isServiceForbidden(err) && errors.As(err, &e) {
		return fmt.Errorf("%w (%s %s answered %d)", ErrReadOnly, e.Method, e.URL, e.Status)
	}
	return err
}

func (s *Store) isKnown(h v1.Hash) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.known[h]
}

func (s *Store) markKnown(hs ...v1.Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range hs {
		s.known[h] = true
	}
}

// rootNumber reads N from a root key of this scope; ok is false for any
// other key.
func (s *Store) rootNumber(key string) (int, bool) {
	if len(key) <= len(s.prefix) || !strings.EqualFold(key[:len(s.prefix)], s.prefix) {
		return 0, false
	}
	n, err := strconv.Atoi(key[len(s.prefix):])
	return n, err == nil && n > 0
}

// newestRoot finds the scope's newest root: the service's newest prefix
// match, then forward checks for higher numbers, because services order by
// creation time (to the second, in nektos/act, whose ties go to the
// oldest) and kiln wants the highest number. The checks gallop (N+1, N+2,
// N+4, ... then back to steps of one), so the usual case, where the
// service's answer is right, costs one lookup, and a tie among k roots
// about 2·log2(k).
func (s *Store) newestRoot(ctx context.Context) (entry, int, error) {
	e, err := s.svc.lookup(ctx, s.prefix, s.prefix)
	if err != nil {
		return entry{}, 0, err
	}
	n, ok := s.rootNumber(e.Key)
	if !ok {
		return entry{}, 0, fmt.Errorf("gha: no cache root %s* (the service matched %s): %w", s.prefix, e.Key, cache.ErrNotFound)
	}
	step := 1
	for range maxRootProbes {
		want := n + step
		next, err := s.svc.lookup(ctx, s.prefix+strconv.Itoa(want))
		m, ok := s.rootNumber(next.Key)
		if err == nil && ok && m >= want {
			e, n, step = next, m, step*2
			continue
		}
		if step == 1 {
			break // no #N+1 (or a failed probe): the root found stands
		}
		step = 1
	}
	return e, n, nil
}

// Root returns the scope's newest root, cache.ErrNotFound when the scope
// has none. It remembers the root's number (SetRoot writes the next) and
// the blobs the root lists (Has then needs no request for them).
func (s *Store) Root(ctx context.Context) ([]byte, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	e, n, err := s.newestRoot(ctx)
	if errors.Is(err, cache.ErrNotFound) {
		s.mu.Lock()
		s.rootRead = true
		s.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	r := &resumer{ctx: ctx, c: s.c, e: e, azure: s.svc.azure(), size: -1}
	defer r.Close()
	raw, err := io.ReadAll(io.LimitReader(r, maxRootSize+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxRootSize {
		return nil, fmt.Errorf("gha: cache root %s is more than %d bytes", e.Key, maxRootSize)
	}
	s.mu.Lock()
	s.rootN, s.rootRead = max(s.rootN, n), true
	s.mu.Unlock()
	var im v1.Manifest
	if json.Unmarshal(raw, &im) == nil {
		hs := []v1.Hash{}
		for _, l := range im.Layers {
			hs = append(hs, l.Digest)
		}
		if im.Config.Data == nil && im.Config.Digest.Hex != "" {
			hs = append(hs, im.Config.Digest)
		}
		s.markKnown(hs...)
	}
	return raw, nil
}

// SetRoot writes manifest as the scope's root #N+1, N being the newest
// root's number; a number already taken (a concurrent export) moves on to
// the next.
func (s *Store) SetRoot(ctx context.Context, manifest []byte) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	s.mu.Lock()
	n, read := s.rootN, s.rootRead
	s.mu.Unlock()
	if !read {
		_, found, err := s.newestRoot(ctx)
		if err != nil && !errors.Is(err, cache.ErrNotFound) {
			return err
		}
		n = found
	}
	var last error
	for i := 1; i <= maxRootAttempts; i++ {
		if err := s.limit.wait(ctx); err != nil {
			return err
		}
		key := s.prefix + strconv.Itoa(n+i)
		err := s.svc.save(ctx, key, int64(len(manifest)), bytes.NewReader(manifest))
		if err == nil {
			s.mu.Lock()
			s.rootN, s.rootRead = max(s.rootN, n+i), true
			s.mu.Unlock()
			return nil
		}
		// A number taken meanwhile, or an upload the service would not
		// finalize (a concurrent reservation of the same number won):
		// the next number.
		if !isExists(err) && !errors.Is(err, errNotFinalized) {
			return readOnly(err)
		}
		last = err
	}
	// The last answer may say why (a {"ok":false} can carry "your cache
	// is now read only").
	return fmt.Errorf("gha: writing cache root: %s%d to #%d are all taken (last answer: %v)", s.prefix, n+1, n+maxRootAttempts, last)
}
