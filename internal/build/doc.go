// Package build runs one build end to end: it reads the Dockerfile and the
// context, plans (package dockerfile), solves (package solve) against the
// state store, assembles the image (package image), writes every output
// (package output, package remote) and reports progress.
//
// build is where the parts meet; it holds no algorithm of its own. Flags
// and the environment are read by package cli, which hands build typed
// Options.
package build
