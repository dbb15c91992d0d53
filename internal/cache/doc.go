// Package cache holds what every cache backend shares: step keys (DESIGN.md
// §3), and, as the portable cache lands, records, the cache manifest, the
// Importer/Exporter/Fetcher interfaces and the backend table.
//
// cache is pure logic: it does not run steps, mount snapshots or talk to a
// registry itself. solve asks it for keys; backends live in subpackages.
package cache
