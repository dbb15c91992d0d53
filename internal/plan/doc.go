// Package plan is the build graph: stages and the steps inside them, each
// with its inputs fully resolved (ARG and ENV expanded, SHELL applied,
// relative paths made absolute against WORKDIR).
//
// plan is pure data. It does no I/O and runs nothing. In a build's data
// flow (the package map in the repository's top-level doc.go) it sits
// between package dockerfile, which builds a Graph from a Dockerfile, and
// package solve, which walks it.
//
// It does not compute cache keys (package cache does, from a Step's
// fields) and does not read the build context. Everything a step's cache
// key needs is in the Step, except file contents, which solve hashes
// (through package source) when it reaches the step.
package plan
