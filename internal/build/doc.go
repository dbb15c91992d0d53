// Package build runs one build end to end: it reads the Dockerfile and the
// context, plans (package dockerfile), solves (package solve) against the
// state store, assembles the image (package image), writes every output
// (package output, package remote) and reports progress.
//
// At the end it writes --metadata-file and, when Options.StepSummary names
// a GitHub job summary file, appends the summary's markdown to it; the
// summary holds the misses and their causes, the slowest steps, and every
// import or export that was skipped (a *cache.SkipError, ignore-error, an
// unreadable cache, Options.Skipped).
//
// build is where the parts meet; it holds no algorithm of its own. Flags
// and the environment are read by package cli, which hands build typed
// Options.
package build
