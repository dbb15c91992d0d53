// Package backends lists the cache backends (All) and makes the program's
// cache table from them (Table): for each type= of a --cache-from /
// --cache-to value, how its attributes parse and what builds its Importer
// or Exporter. It is a list literal, not a registry filled by init
// functions: adding a backend is one new package under cache/ and one line
// in All.
//
// The list lives here rather than in package cache because the backends
// import cache.
package backends
