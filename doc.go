// Kiln builds container images from Dockerfiles, pushes them, and keeps
// their build cache wherever CI can reach it. See README.md for the user's
// view; this comment is the map of the parts, and each package's doc.go
// states its own contract.
//
// One build flows through the packages like this:
//
//	flags ─► cli ─► build.Options
//	Dockerfile + build args ─► dockerfile ─► plan.Graph
//	solve, for each step: cache key ─► hit: reuse the layer (lazy), from store or a cache importer
//	                                └► miss: exec (RUN) or source (COPY) on a snapshot ─► layer ─► store
//	image (config + manifest) ─► outputs (oci, docker, local dir, registry push)
//	                          └► cache exporters (inline, registry, local, gha)
//
// progress carries events from solve and build to the renderer cli picked.
//
// Everything but cmd/kiln is internal: kiln is a program, not a library.
// The packages follow the boxes of the data flow:
//
//	cmd/kiln            main: signals, cli.Run, exit code
//	internal/cli        cobra commands; flags and environment → typed options; errors → exit codes
//	internal/build      one build end to end: plan → solve → image → outputs → cache exports
//	internal/dockerfile Dockerfile + build args → plan (the only importer of BuildKit's parser)
//	internal/plan       the build graph: stages and resolved steps (pure data)
//	internal/solve      walks the graph: key → hit (local store, imported cache) or execute
//	internal/exec       RUN through an OCI runtime (runc, crun)
//	internal/snapshot   unpacked layers by chain ID; overlayfs mounts; copying fallback
//	internal/layer      diff → OCI tar (whiteouts) → gzip/zstd; safe apply
//	internal/source     the build context and stage roots as COPY sources: .dockerignore, checksums, copy rules
//	internal/store      the state dir: blobs, step records, locks, prune
//	internal/cache      keys, the portable cache manifest, Importer/Exporter, spec parsing
//	internal/cache/*    one backend per package (local, …), the backend table, the conformance suite
//	internal/image      config, history and manifest assembly
//	internal/output     oci and docker tarballs; output specs
//	internal/remote     registries: references, auth, push, login (over transport)
//	internal/transport  HTTP for every client: retries, bounds, redaction, TLS policy, *transport.Error
//	internal/progress   events, renderers (tty, plain, json), the summary
//	internal/ghacache   the GitHub Actions cache server behind kiln cache-server (v1, v2, blob URLs)
//	internal/imagetest  test fixtures: busybox base images, registries, invariant checks
package kiln
