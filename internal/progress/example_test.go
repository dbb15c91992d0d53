package progress_test

import (
	"os"
	"time"

	"github.com/kiln-build/kiln/internal/progress"
)

func ExampleNewPlain() {
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	sink := progress.NewPlain(os.Stdout)

	sink.Emit(progress.Event{Kind: progress.StepStart, Time: start, Step: 1, Total: 2, Stage: "build", Text: "RUN make"})
	sink.Emit(progress.Event{Kind: progress.Log, Time: start.Add(213 * time.Millisecond), Step: 1, Stream: "stdout", Line: "compiling…"})
	sink.Emit(progress.Event{Kind: progress.StepDone, Step: 1, Duration: 1400 * time.Millisecond})
	sink.Emit(progress.Event{Kind: progress.StepCached, Step: 2, Total: 2, Stage: "build", Text: "COPY . /src", Source: "local state"})
	sink.Emit(progress.Event{Kind: progress.Done, Summary: &progress.Summary{
		Steps: 2, Cached: 1, Ran: 1, Duration: 1500 * time.Millisecond,
		Caches: []progress.CacheStat{{Source: "local state", Hits: 1, Direction: progress.DirectionImport}},
	}})
	// Output:
	// #1 [build 1/2] RUN make
	// #1 0.213 compiling…
	// #1 DONE 1.4s
	// #2 [build 2/2] COPY . /src
	// #2 CACHED (local state)
	// Summary: 2 steps, 1 cached, 1 ran in 1.5s
	//   cache local state: 1 hit
}
