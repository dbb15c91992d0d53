package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Layer is one layer blob of a record's chain.
type Layer struct {
	// MediaType is the blob's media type (its compression).
	MediaType types.MediaType `json:"mediaType"`
	// Digest is the digest of the compressed blob.
	Digest v1.Hash `json:"digest"`
	// Size is the compressed size in bytes.
	Size int64 `json:"size"`
	// DiffID is the digest of the uncompressed tar.
	DiffID v1.Hash `json:"diffID"`
}

// Descriptor returns the layer as an OCI descriptor.
func (l Layer) Descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}
}

// Input is the digest of one input that made a key: its name ("args",
// "env:PATH", "mount:/root/.cache", "source:app/", "content", …) and the
// SHA-256 of its canonical value. Only digests are kept, never values, so a
// record can say which input changed between two builds without holding
// anything a secret could leak through.
type Input struct {
	// Name names the input within its step kind.
	Name string `json:"name"`
	// Digest is "sha256:" and the hex digest of the input's canonical JSON.
	Digest string `json:"digest"`
}

// Record is the result of one build step, as the local store, the solver
// and every cache manifest know it: the step's key, what made the key, and
// the whole layer chain of the filesystem after the step.
type Record struct {
	// Key is the step's cache key.
	Key Key `json:"key"`
	// Canonical, when set, makes Key an alias: the step's result is
	// canonically known by Canonical (a COPY --from found by its source
	// stage's key rather than by content), and later steps' keys build on
	// Canonical, however this one was found.
	Canonical Key `json:"canonical,omitempty"`
	// Parent is the key of the state the step ran on.
	Parent Key `json:"parent,omitempty"`
	// Inputs are the digests of the step's other key inputs, sorted by
	// name.
	Inputs []Input `json:"inputs,omitempty"`
	// Layers is the whole layer chain after the step, bottom first.
	Layers []Layer `json:"layers"`
	// CreatedBy is the instruction, as image history shows it.
	CreatedBy string `json:"createdBy,omitempty"`
	// Stage is the label of the stage the step belongs to.
	Stage string `json:"stage,omitempty"`
	// Created is when the result was made (or SOURCE_DATE_EPOCH).
	Created time.Time `json:"created,omitzero"`

	// The fields below exist to explain a later miss of the same step
	// (see explain.go); no lookup depends on them, and records without
	// them (earlier kilns) read as before.

	// Step is the step's identity without its contents (StepID): where it
	// sits in its Dockerfile, so that the next build of a changed step can
	// find this record to compare with.
	Step string `json:"step,omitempty"`
	// Base is the manifest digest of the registry image a stage's first
	// filesystem step ran on ("" for other steps), so that a miss can name
	// the base image that changed.
	Base string `json:"base,omitempty"`
	// Files are per-path digests of what a COPY or ADD copied, bounded by
	// BoundFiles, so that a miss can name the files that changed.
	Files []FileSum `json:"files,omitempty"`
}

// ResultKey is the key later steps build on: Canonical when set, else Key.
func (r Record) ResultKey() Key {
	if r.Canonical != "" {
		return r.Canonical
	}
	return r.Key
}

// digestOf is the digest an Input carries for v.
func digestOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Inputs are plain strings, ints and slices of them.
		panic(fmt.Sprintf("cache: encoding key input: %v", err))
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// AliasAs returns r known by key as an alias of r's result key.
func (r Record) AliasAs(key Key) Record {
	r.Canonical = r.ResultKey()
	r.Key = key
	return r
}
