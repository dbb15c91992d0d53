// Package e2e holds kiln's end-to-end tests: the real kiln binary, real
// runc, and the real docker-registry server, all on 127.0.0.1. The GitHub
// Action's tests (action_*_test.go) also run the example workflows under
// nektos/act (its cache server, actions/checkout handling, and stand-ins
// for actions/cache and docker/login-action in testdata/actions) and load
// an image into a dockerd the test starts on a private socket.
//
// Every test asks for the parts it needs with imagetest.Require: a missing
// part skips the test when KILN_E2E is unset; with KILN_E2E set (as .ci/run
// sets it) it is a failure.
//
// TestConformance builds the cases of testdata/conformance and compares
// kiln's image with what BuildKit built from the same input (want.json,
// recorded by `make conformance`; see conformance_test.go for the format).
package e2e
