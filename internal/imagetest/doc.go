// Package imagetest holds the image fixtures every package's tests share:
// a busybox-static base layer and image built from the host's /bin/busybox
// (nothing is pulled from the internet), deterministic random layers, an
// in-process registry with push and pull helpers, and Check, the invariant
// checker every test runs on the images it builds.
//
// It is imported by _test.go files only. Its helpers take a testing.TB and
// fail or skip it themselves rather than returning errors.
//
// Push and Pull talk to registries with go-containerregistry's remote
// package directly: they are test plumbing for plain-HTTP loopback
// registries, not kiln's registry client (package remote).
//
// imagetest has no place in a build's data flow: it stands in for what a
// build reads (base images, registries) and checks what it writes.
package imagetest
