// Package plan is the build graph: stages and the steps inside them, each
// with its inputs fully resolved (ARG and ENV expanded, SHELL applied,
// relative paths made absolute against WORKDIR).
//
// plan is pure data. It does no I/O and runs nothing: package dockerfile
// builds a Graph from a Dockerfile, package solve walks it. Everything a
// step's cache key needs is in the Step, except file contents, which solve
// hashes when it reaches the step (DESIGN.md §3).
package plan
