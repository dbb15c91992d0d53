// Package registry is the type=registry cache backend: the cache manifest
// of package cache pushed to an OCI registry as the config of an OCI image
// manifest whose layers are the cache layers, so every registry that takes
// images takes it (ECR included).
//
// It implements the blob core of package cache (cache.BlobStore), plus
// cache.LayerPutter so that layers already in another repository of the
// same registry are cross-repo mounted, not copied. Its importer also
// reads images that carry inline cache (package cache's DecodeInline), so
// --cache-from type=registry,ref=IMAGE works after --cache-to type=inline.
package registry
