// Package output writes a built image where --output says: an OCI layout
// tar, a `docker load` tar, or (described here, pushed by package remote) a
// registry. It also parses the --output CSV into a Spec, with buildx's
// syntax.
//
// It sits at the end of DESIGN.md §2's data flow, after image assembly.
// It does not push by itself (build hands registry outputs to
// remote.Client.Push) and it does not export the local directory output
// (build unpacks the final snapshot). Library code never prints: a dest of
// "-" (stdout) is handled by the caller through the WriteOCITar and
// WriteDockerTar writers.
package output
