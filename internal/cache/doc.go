// Package cache holds what every cache backend shares: step keys (DESIGN.md
// §3), and, as the portable cache lands, records, the cache manifest, the
// Importer/Exporter/Fetcher interfaces and the backend table.
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
// *SkipError, which the build lists in its summary; one that counts its
// HTTP requests offers RequestCounter (CountRequests wraps a transport).
//
// cache is pure logic: it does not run steps, mount snapshots or talk to a
// registry itself. solve asks it for keys; backends live in subpackages.
package cache
