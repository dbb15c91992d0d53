// Package e2e holds kiln's end-to-end tests: the real kiln binary, real
// runc, and the real docker-registry server, all on 127.0.0.1.
//
// The tests skip when KILN_E2E is unset and a part is missing; with
// KILN_E2E set (as .ci/run sets it) a missing part is a failure.
//
// TestConformance builds the cases of testdata/conformance and compares
// kiln's image with what BuildKit built from the same input (want.json,
// recorded by `make conformance`; see conformance_test.go for the format).
package e2e
