// Package imagetest holds the image fixtures every package's tests share:
// a busybox-static base layer and image built from the host's /bin/busybox
// (nothing is pulled from the internet), deterministic random layers, an
// in-process registry with push and pull helpers, and Check, the invariant
// checker every test runs on the images it builds.
//
// It also owns kiln's one skip policy: Require(t, "root", "runc", …) is how
// every test asks for a part outside the process (a binary, root, overlayfs).
// A missing part skips the test, unless KILN_E2E is set, as CI sets it: then
// it fails the test, naming the part and how to install it. No other test
// code skips for a missing part, and CI fails when any test skips (see
// .ci/testsum). Require reads KILN_E2E itself: that is test policy, not
// kiln's behaviour, so STYLE's rule that only internal/cli reads the
// environment does not bind it.
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
