package progress

import "time"

// The values of Miss.Reason: why a step was not a cache hit, as a word a
// program can branch on.
const (
	// ReasonNoCache: --no-cache was given, or --no-cache-filter named the
	// step's stage.
	ReasonNoCache = "no-cache"
	// ReasonParent: the step before it (ParentStep) missed, so this one's
	// key is new whatever it holds.
	ReasonParent = "parent"
	// ReasonNew: no earlier record of the step, in the local state or any
	// imported cache.
	ReasonNew = "new"
	// ReasonBase: the stage's base image resolved to another digest.
	ReasonBase = "base"
	// ReasonInstruction: the instruction itself changed.
	ReasonInstruction = "instruction"
	// ReasonInputs: inputs other than the instruction changed (build args,
	// environment, working directory, user, mounts, files, …); Inputs
	// names them and Files the changed files.
	ReasonInputs = "inputs"
	// ReasonParentChanged: the step is built on another state than its
	// earlier record, though the step before it hit (steps were added or
	// removed above it, or it hit another record).
	ReasonParentChanged = "parent-changed"
	// ReasonUnusable: a record with the very key exists, but its layers
	// could not be used (missing, bad, or on another chain).
	ReasonUnusable = "unusable"
)

// Miss says why one step was not a cache hit. It holds names and digests
// only: never the value of a build arg, an environment variable or a
// secret.
type Miss struct {
	// Step is the step's number, as in Event.Step.
	Step int `json:"step"`
	// Stage is the label of the step's stage.
	Stage string `json:"stage,omitzero"`
	// Text is the instruction.
	Text string `json:"text,omitzero"`
	// Reason is one of the Reason constants.
	Reason string `json:"reason"`
	// Cause is the explanation as every renderer shows it, e.g.
	// "COPY src/ /app/: 3 files changed: src/a.go, src/b.go, +1" or
	// "RUN make: build arg VERSION changed".
	Cause string `json:"cause"`
	// ParentStep is, for ReasonParent, the step whose miss this one
	// follows.
	ParentStep int `json:"parentStep,omitzero"`
	// Inputs names the inputs that changed, were added or removed:
	// "arg:NAME" (a build arg), "env:NAME", "workdir", "user", "network",
	// "mount:TARGET", "file:NAME", "content", "sourceDateEpoch",
	// "addHost:HOST", "shmSize", "ulimit:NAME", ….
	Inputs []string `json:"inputs,omitzero"`
	// Files are changed, added or removed paths of a COPY or ADD (at most
	// 20; a path ending in "/" is a directory whose contents changed).
	Files []string `json:"files,omitzero"`
	// FilesChanged is how many paths changed in all.
	FilesChanged int `json:"filesChanged,omitzero"`
	// Against names where the record it was compared with came from:
	// "local state" or an imported cache.
	Against string `json:"against,omitzero"`
	// Was is, for ReasonBase, the base image's earlier manifest digest.
	Was string `json:"was,omitzero"`
	// Now is, for ReasonBase, the base image's current manifest digest.
	Now string `json:"now,omitzero"`
}

// Notice is an import or export that was skipped, and why (ACTIONS_CACHE_MODE,
// a read-only token, ignore-error=true, a cache that could not be read…).
type Notice struct {
	// Source is the cache as the user wrote it.
	Source string `json:"source"`
	// Direction is DirectionImport or DirectionExport.
	Direction string `json:"direction"`
	// Reason says why, in words.
	Reason string `json:"reason"`
}

// StepTime is how long one executed step ran.
type StepTime struct {
	// Step is the step's number.
	Step int `json:"step"`
	// Stage is the label of its stage.
	Stage string `json:"stage,omitzero"`
	// Text is the instruction.
	Text string `json:"text"`
	// Duration is how long it ran.
	Duration time.Duration `json:"duration"`
}

// missLine is the line a renderer writes for a step that missed:
// "#4 MISS RUN make: build arg VERSION changed".
func missLine(m *Miss) string {
	return prefix(m.Step) + " MISS " + m.Cause
}
