// Package ghacache is a self-hostable GitHub Actions cache service: one
// http.Handler that speaks the legacy v1 REST API (`/_apis/artifactcache/`),
// the v2 Twirp API (`/twirp/github.actions.results.api.v1.CacheService/`)
// and the slice of the Azure Blob API that clients use on the signed URLs v2
// hands out (Put Blob, Put Block, Put Block List, ranged Get Blob), all from
// one origin. It is what `kiln cache-server` serves, and the in-process GHA
// fake of kiln's own tests.
//
// It is strict where GitHub is strict, so that a client that works against it
// works against github.com: entries are immutable (a second save of the same
// key and version is a 409 already_exists), keys match exactly first and then
// by prefix with restore keys, newest first; a commit whose size does not
// match what was uploaded is refused and the entry stays invisible; chunks
// out of range or overlapping are refused; nothing half-uploaded is ever
// served. There is one scope: every client of a server sees every entry (a
// server is one repository's cache).
//
// Storage is a directory (see Options.Dir). Every file is written to a
// temporary name, synced and renamed, so the store survives a kill at any
// moment: an entry is visible exactly when its metadata file exists, and the
// in-memory index is rebuilt from the directory on start. Least recently used
// entries are evicted past Options.MaxSize.
//
// The package owns the server side only; kiln's client is internal/cache/gha.
// It never prints: diagnostics go to the injected *slog.Logger.
package ghacache
