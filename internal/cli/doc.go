// Package cli is kiln's command line: cobra commands that turn flags and
// the environment into typed options, call the packages that do the work,
// and map every error to one message and one exit code.
//
// cli is the only package that reads the environment (KILN_STATE,
// DOCKER_CONFIG, SOURCE_DATE_EPOCH, ACTIONS_*, GITHUB_STEP_SUMMARY,
// DOCKER_BUILD_SUMMARY, GITHUB_ACTIONS). Under GitHub Actions it writes the
// build summary to stderr as a log group after the build (not with
// --progress json). Exit codes:
//
//	0  success
//	1  the build failed (a RUN exited non-zero, a registry refused a push,
//	   any *transport.Error or network failure, a bound of package transport
//	   hit: a redirect loop, a silent server, a stalled download), even
//	   when it happened resolving a Dockerfile's FROM
//	2  usage or input error: a bad flag or cache spec, a Dockerfile error
//	   (file:line), a missing file, a COPY source outside the context
package cli
