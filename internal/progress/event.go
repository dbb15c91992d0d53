package progress

import "time"

// Kind says what an Event reports, and so which of its fields are set.
type Kind string

// The kinds of Event. Every step event (StepStart to Log) carries Step; the
// first event of a step (StepStart, or StepCached for a step that never
// runs) also carries Total, Stage and Text, which renderers remember for the
// step's later events.
const (
	// StepStart: a step begins executing (it was not a cache hit). Miss
	// says why, when the emitter knows.
	StepStart Kind = "start"
	// StepCached: a step was a cache hit; Source names the cache that had
	// it ("local state", "type=local,src=/c", …). No other event follows
	// for the step.
	StepCached Kind = "cached"
	// StepDone: a step finished executing; Duration is how long it ran.
	StepDone Kind = "done"
	// StepFailed: a step failed. Err says why; ExitCode is set when a RUN
	// exited non-zero, and Err then need not repeat it.
	StepFailed Kind = "failed"
	// Log: one line of a RUN's output. Stream is "stdout" or "stderr";
	// Line has no trailing newline.
	Log Kind = "log"
	// Warning: something went wrong that did not fail the build (a cache
	// that could not be read, …); Message says what. Step is set when the
	// warning is about one step, else 0.
	Warning Kind = "warning"
	// Info: something the user may want to know (for example "using the
	// copying snapshotter: overlayfs unavailable"); Message says what.
	// Step as for Warning.
	Info Kind = "info"
	// Done: the build is over; Summary is set. It is the last event.
	Done Kind = "summary"
)

// Event is one thing that happened during a build. Which fields are set
// depends on Kind (see the Kind constants); the others are zero. Events are
// values: a Sink may keep them, and an emitter must not change a Summary
// after emitting it.
//
// The JSON renderer writes Event with the field names in its tags and
// leaves zero fields out; durations are integer nanoseconds.
type Event struct {
	// Kind is what the event reports, and so which other fields are set.
	// Every event has one.
	Kind Kind `json:"kind"`
	// Time is when it happened, from the emitter's clock. Renderers use it
	// for the offset of a log line within its step; an event with a zero
	// Time just has no offset shown.
	Time time.Time `json:"time,omitzero"`

	// Step is the step's number within the build, from 1, unique across
	// stages (so "#3" names one step even when stages run in parallel).
	Step int `json:"step,omitzero"`
	// Total is the number of steps in the build.
	Total int `json:"total,omitzero"`
	// Stage is the label of the step's stage ("build", "stage-0").
	Stage string `json:"stage,omitzero"`
	// Text is the instruction as the user would recognise it ("RUN make").
	Text string `json:"text,omitzero"`

	// Source names the cache a StepCached hit came from.
	Source string `json:"source,omitzero"`
	// Stream is "stdout" or "stderr" for a Log event.
	Stream string `json:"stream,omitzero"`
	// Line is one line of output for a Log event, without its newline.
	Line string `json:"line,omitzero"`

	// Duration is how long a step ran (StepDone, and StepFailed if known).
	Duration time.Duration `json:"duration,omitzero"`
	// ExitCode is a failed RUN's non-zero exit status.
	ExitCode int `json:"exitCode,omitzero"`
	// Err is why a step failed.
	Err string `json:"error,omitzero"`
	// Message is the text of a Warning or Info event.
	Message string `json:"message,omitzero"`

	// Miss, on a StepStart, says why the step was not a cache hit.
	Miss *Miss `json:"miss,omitzero"`

	// Summary is set on the Done event.
	Summary *Summary `json:"summary,omitzero"`
}

// Summary is the end-of-build account: what ran, what the caches gave and
// took, and what was built. cli may also write it to --metadata-file.
type Summary struct {
	// Steps is the number of steps in the build. Steps that only change
	// the image config may count as neither Cached nor Ran.
	Steps int `json:"steps"`
	// Cached is the number of steps a cache supplied (StepCached events).
	Cached int `json:"cached"`
	// Ran is the number of steps that were executed and finished
	// (StepDone events).
	Ran int `json:"ran"`
	// Duration is the wall time of the whole build.
	Duration time.Duration `json:"duration"`
	// Caches has one entry per cache source, in the order the user gave
	// them (--cache-from first, then --cache-to).
	Caches []CacheStat `json:"caches,omitzero"`
	// Digest is the built image's manifest digest ("sha256:…"), or "" if
	// no image was assembled.
	Digest string `json:"digest,omitzero"`
	// Images are the references the image was tagged with.
	Images []string `json:"images,omitzero"`
	// Misses explain, in step order, every step that was not a cache hit.
	Misses []Miss `json:"misses,omitzero"`
	// Skipped lists the imports and exports that did not happen, and why.
	Skipped []Notice `json:"skipped,omitzero"`
	// Slowest are the executed steps that took longest, longest first (at
	// most a few).
	Slowest []StepTime `json:"slowest,omitzero"`
	// Failure, when set, says what ended a failed build; the rest of the
	// summary is what the build did until then.
	Failure *Failure `json:"failure,omitzero"`
}

// Failure is what ended a failed build.
type Failure struct {
	// Step is the number of the step that failed, as in Event.Step; 0
	// when the build failed outside a step (the Dockerfile, an output, a
	// cache export).
	Step int `json:"step,omitzero"`
	// Stage is the label of the failed step's stage.
	Stage string `json:"stage,omitzero"`
	// Text is the failed step's instruction.
	Text string `json:"text,omitzero"`
	// Message is the line kiln's error ends with on stderr ("kiln:
	// Dockerfile:7: RUN make: exit code 2"), the line the GitHub Action
	// fails its step with.
	Message string `json:"message"`
	// Tail are the last lines the failed RUN printed.
	Tail []string `json:"tail,omitzero"`
}

// The values of CacheStat.Direction.
const (
	DirectionImport = "import"
	DirectionExport = "export"
	DirectionBoth   = "both"
)

// CacheStat is what one cache source did in a build.
type CacheStat struct {
	// Source is the cache as the user wrote it ("type=local,src=/c"), or
	// "local state" for the state directory.
	Source string `json:"source"`
	// Hits is the number of steps this cache supplied.
	Hits int `json:"hits"`
	// BytesRead counts the blob bytes read from the cache. A hit whose
	// layer was never needed reads nothing.
	BytesRead int64 `json:"bytesRead"`
	// BytesWritten counts the blob bytes the export moved to the cache; a
	// blob it did not need to send adds nothing.
	BytesWritten int64 `json:"bytesWritten"`
	// Requests counts the HTTP requests the import or export made (every
	// attempt sent, as the server sees them), for backends that speak HTTP
	// (registry, gha); nil means the backend makes no requests of its own
	// (local, inline), which renderers show apart from a count of 0.
	Requests *int64 `json:"requests,omitempty"`
	// Direction is DirectionImport, DirectionExport or DirectionBoth. If
	// it is empty, renderers infer it from which counts are non-zero.
	Direction string `json:"direction,omitzero"`
	// Skipped, when set, is why the import or export did not run (the
	// location's policy: ACTIONS_CACHE_MODE, a read-only token).
	Skipped string `json:"skipped,omitempty"`
}
