// Package gha is the type=gha cache backend: kiln's cache in the GitHub
// Actions cache service, over the v1 REST API (_apis/artifactcache: GHES,
// Gitea, Forgejo, nektos/act) and the v2 Twirp CacheService with Azure
// Blob uploads (github.com), both as spoken by kiln cache-server too.
//
// It owns the wire clients, the key layout and the env-defaulted config;
// package cache turns its blob core (Store, a cache.BlobStore) into an
// importer and an exporter. It does not retry 429 or 5xx answers itself:
// the http.RoundTripper under it does (a transport.Transport: Retry-After,
// back-off shared per host, a time budget), and every operation runs
// under the config's timeout. What it retries is what only it can: a
// download cut short is resumed with a ranged read, an expired signed
// download URL is asked for again once.
//
// # Entries
//
// Entries are immutable and found by key, exactly or by prefix, within
// one version string (kiln's is a constant, so kiln's entries never meet
// those of actions/cache or BuildKit):
//
//	kiln-blob-1-sha256:<hex>   one blob, content-addressed, written once
//	kiln-root-1-<scope>#<N>    the root: the OCI image manifest an import
//	                           starts from, N = 1, 2, ...
//
// An import finds the newest root with one prefix lookup (the service
// picks the newest by creation time), checks with one more lookup that no
// #N+1 exists (numbers compare as numbers: #10 follows #9; when one does,
// the checks gallop on, as after a tie in nektos/act, whose creation times
// are whole seconds), and downloads it. The cache manifest rides inside the root's config descriptor
// (EmbedsConfig), so an import is two lookups and one download and no
// request per blob. An export writes root #N+1, moving on to the next
// number when a concurrent export took it.
//
// A blob listed by the root that the export read is not looked up again;
// with repository= and ghtoken= the repository's blob entries are listed
// once through the GitHub REST API; otherwise each blob costs one lookup.
// The trade-off: a blob GitHub evicted while a root still lists it is not
// sent again until the layer itself changes; an import then misses that
// layer, which is a miss, never a wrong image.
//
// # Rate of new entries
//
// GitHub allows 200 new cache entries per minute per repository. A store
// creates at most Options.EntriesPerMinute (default 180) entries in any 60
// seconds, a sliding window over the start times of its last 180
// creations, so a 100-layer mode=max export (100 blobs and one root) goes
// at full speed and a larger one waits only for the window, never trips
// the limit by itself. Uploads run Options.Parallel (4) at a time. Jobs of
// a matrix share the repository's limit: a 429 they cause is the
// transport's to wait out.
//
// # Trust
//
// ACTIONS_CACHE_MODE is honoured as @actions/cache 6.x does (read: import
// only; write-only: export only; none: neither; any other value: both).
// The runtime token's ac claim is read without checking its signature: a
// token that grants write in no scope skips the export before any request
// (ErrReadOnly), and so does a 403 from the service on a write, or an
// {"ok":false} whose message says writes are refused ("cache write
// denied: …", a budget that left the cache "read only"). A token that is not
// a JWT (a kiln cache-server token) may do whatever the server allows.
//
// # Tolerance
//
// As a client it accepts both JSON spellings and int64 as string or
// number, treats 409 already_exists and 200 {"ok":false} alike as "the
// entry is there", strips a UTF-8 byte order mark from error bodies, and
// checks every download's Content-Range, length and digest: a server that
// ignores a range and sends the whole blob has the first bytes skipped,
// and wrong bytes are a miss, never returned. Errors are
// *transport.Error (Service "gha cache" or "gha blob storage"): status,
// method, a redacted URL (no query value, and no path of a v1 base URL,
// where nektos/act keeps its credential) and the server's message; no
// token or signature appears in a message.
package gha
