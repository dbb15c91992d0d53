// Package store is kiln's state directory ($KILN_STATE): content-addressed
// blobs (compressed layers, configs, manifests), the local record index (one
// file per cache key: the layer chain a build step produced), per-key build
// locks, scratch space, and the directories handed to the snapshotter and to
// the context checksum cache. It is itself a cache, bounded by Prune.
//
// Layout under the root:
//
//	lock            shared flock while a Store is open; exclusive during Prune
//	blobs/sha256/   one file per blob, named by its hex digest
//	records/        one JSON file per cache key
//	ix/             the record index: the last keys filed per parent key and
//	                per step identity (index.go), for explaining misses
//	locks/          one flock file per name passed to Lock
//	tmp/            one scratch directory per open Store (session.go): TempDir,
//	                SecretDir, BundleDir; a dead build's is removed by the next
//	                build (SweepDead) or by Prune
//	sn/             the snapshotter's directory (SnapshotRoot); short on purpose,
//	                because overlay mount data is limited to a page
//	cc/             context checksum caches (ContextCacheFile)
//
// Every file is written to a temporary name in its final directory and
// renamed into place, so a reader never sees half a blob or half a record,
// and two builds writing the same blob or record both succeed. Builds need no
// global lock for the index: the shared lock on root/lock only keeps Prune
// out while any build runs.
//
// store knows nothing about how snapshots are made (package snapshot) or
// what a cache key means (package cache); it sits under solve in a build's
// data flow, holding what solve produced and what the importers fetched.
package store
