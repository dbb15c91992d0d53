// Package local is the type=local cache backend: an OCI image layout
// directory (oci-layout, index.json, blobs/sha256/) holding one cache per
// tag.
//
// It implements only the blob core of package cache (cache.BlobStore plus
// cache.Locker). Its one addition is garbage collection: an export writes
// its new blobs, swaps index.json atomically, then deletes every blob that
// no tag in index.json refers to any more, so the directory stays the size
// of the caches it holds instead of growing with every build
// (docker/build-push-action#252).
package local
