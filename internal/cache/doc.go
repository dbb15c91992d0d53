// Package cache holds what every cache backend shares, and nothing of any
// one backend's transport:
//
//   - step keys (Key, RunInput, CopyInput): the SHA-256 of everything that
//     decides a step's result, and the per-input digests a record keeps;
//   - Record and Layer, the one vocabulary of a step result that the local
//     store, the solver and every cache manifest use;
//   - Manifest, the portable cache manifest (its JSON stores each layer
//     once and records by layer index), and inline cache in an image config;
//   - the Importer / Exporter / Fetcher contracts, and BlobStore, the tiny
//     core ("a root manifest plus blobs by digest") that local, registry and
//     gha implement and that NewImporter/NewExporter turn into the whole
//     contract, with optional capabilities found by type assertion
//     (Locker, LayerPutter, ConfigEmbedder, RootTruster, LayerFetcher,
//     Mounter, ImageExporter, InsecureHoster);
//   - the backend factory: Backend (one per backend package), Table (what a
//     program knows, with the Deps backends are built with), spec parsing
//     and the shared attributes (mode, ignore-error, compression…).
//
// In a build's data flow cache sits between solve (which asks for keys and
// reads imported records) and the backends under it (cache/local,
// cache/registry, cache/inline, cache/gha), listed in cache/backends. It
// does not run steps, mount snapshots or speak HTTP; the one dependency on a
// transport is the type of Deps.Remote, the registry client backends get.
package cache
