// Package cachetest is the conformance suite every cache backend runs:
// round trip, miss, a corrupt blob read as a miss, a failed export that
// publishes nothing, concurrent exports, and attribute parsing. Backends run
// it in-process (fakes, t.TempDir) and in e2e against the real servers.
package cachetest
