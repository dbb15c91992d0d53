// Package output writes a built image where --output and --push say: an OCI
// layout tar, a `docker load` tar, a local directory holding the image's
// root filesystem, or a registry. It also parses the --output CSV into a
// Spec, with buildx's syntax.
//
// It sits at the end of a build's data flow, after image assembly: build
// hands Write the assembled image with the outputs and tags. Pushes go
// through package remote, which owns all registry I/O (auth, retries, blob
// mounts); output only decides which tags are pushed, and with which image.
// It does not assemble images (package image) and does not export caches
// (build does that after the outputs). Library code never prints: a dest of
// "-" is written to Request.Stdout, which the caller supplies.
package output
