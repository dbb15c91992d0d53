// Package solve walks a plan.Graph and produces the target stage's layers
// and config. For each step it computes the cache key (package cache), asks
// the local store for a record, and on a miss executes the step: RUN through
// package exec over a snapshot, COPY and ADD by copying files into a
// snapshot; the snapshot's diff becomes a compressed layer in the store.
// That compression, and the step's record, run in the background while
// the next steps run on the committed snapshot (pending.go); the solve
// returns once every layer is stored.
//
// A hit costs no layer bytes: the layers stay descriptors backed by the
// store (or the base image's registry) until a later step or an output reads
// them. Independent stages are solved in parallel.
//
// Every step that misses is explained (explain.go): solve finds its
// nearest earlier record (same parent, else same place in the Dockerfile)
// in the store's record index and in every imported manifest, compares
// their input and file digests, and puts the cause on the step's StepStart
// event as a progress.Miss; Result.Misses and Result.Slowest feed the
// summary. Explanations hold names and digests only, never values.
//
// solve does not parse Dockerfiles, assemble manifests or push; package
// build wires it between dockerfile and image/output.
package solve
