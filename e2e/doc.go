// Package e2e holds kiln's end-to-end tests: the real kiln binary, real
// runc, and the real docker-registry server, all on 127.0.0.1. The GitHub
// Action's tests (action_*_test.go) also run the example workflows under
// nektos/act (its cache server, actions/checkout handling, and stand-ins
// for actions/cache and docker/login-action in testdata/actions) and load
// an image into a dockerd the test starts on a private socket.
//
// The tests skip when KILN_E2E is unset and a part is missing; with
// KILN_E2E set (as .ci/run sets it) a missing part is a failure.
package e2e
