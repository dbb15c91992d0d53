// Package inline is the type=inline cache exporter: the min-mode records
// of the final image's own layers, written into the image config under
// cache.InlineKey, so the cache travels with the pushed image. It is read
// back by the registry backend (--cache-from type=registry,ref=IMAGE).
//
// Inline cache can only point at layers the image holds, so it is min mode
// by nature: intermediate stages are never in it (use type=registry,
// mode=max for those).
package inline
