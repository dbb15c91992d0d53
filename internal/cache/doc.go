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
//
// Records also carry what a later build needs to explain a miss of the same
// step, in every manifest (all optional fields, so manifests of earlier
// kilns read unchanged): the digest of each key input (Record.Inputs, never
// a value), the step's identity without its contents (Record.Step, see
// StepID), the base image digest of a stage's first step (Record.Base), and
// for COPY and ADD one short digest per copied path (Record.Files). Files
// are bounded: at most MaxFiles entries, past that folded by directory
// into Merkle digests (BoundFiles), so that a record never grows with the
// tree it copied; ChangedFiles compares two lists, folded or not. Inline
// cache leaves Files out, since it sits in every pulled image config.
//
// An Importer or Exporter that deliberately does nothing returns a
// *SkipError (an ErrSkipped), which the build lists in its summary; one that counts its
// HTTP requests offers RequestCounter (CountedImporter and CountedExporter
// count them through package transport).
package cache
