// Command testsum runs `go test -json` with its arguments and checks the
// result the way kiln's CI wants it checked. `make test` runs it:
//
//	go run ./.ci/testsum -race -count=1 -timeout 20m ./... ./.ci/testsum
//
// It prints what a person needs: the output of every failed test (its own
// output lines, as `go test` prints them), the compiler's output for a
// package that did not build, one line per package, the skipped tests with
// their reasons, and last, alone on its line, "N passed, N failed, N
// skipped", where N counts tests and subtests (a package that failed
// without a failed test, such as one that did not build, counts as one
// failed).
//
// The exit status is 1 when a test or a build failed, when `go test` itself
// failed, or, with KILN_E2E set (as .ci/run sets it), when any test
// skipped: under KILN_E2E every part a test needs is installed, so a skip is
// a test that did not run (see imagetest.Require). It is 0 otherwise.
//
// It lives in .ci, outside `./...`, because it is CI plumbing rather than
// part of kiln; `make test` names it explicitly so that its own tests run.
package main
