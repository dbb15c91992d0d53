package progress

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// at is t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// golden compares got with testdata/path, or rewrites the file with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	path = filepath.Join("testdata", path)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("output differs from %s (-want +got):\n%s", path, diff)
	}
}

// streams are the event sequences the renderers are golden-tested on.
var streams = []struct {
	name   string
	events []Event
}{
	{
		// The example of the progress design: one stage, a run, a hit,
		// a failure.
		name: "build",
		events: []Event{
			{Kind: StepStart, Time: at(0), Step: 1, Total: 5, Stage: "build", Text: "FROM busybox:latest@sha256:0123456789abcdef"},
			{Kind: StepDone, Time: at(300), Step: 1, Duration: 300 * time.Millisecond},
			{Kind: StepStart, Time: at(300), Step: 2, Total: 5, Stage: "build", Text: "RUN make"},
			{Kind: Log, Time: at(513), Step: 2, Stream: "stdout", Line: "compiling…"},
			{Kind: Log, Time: at(1650), Step: 2, Stream: "stderr", Line: "warning: unused variable"},
			{Kind: StepDone, Time: at(1700), Step: 2, Duration: 1400 * time.Millisecond},
			{Kind: StepCached, Time: at(1710), Step: 3, Total: 5, Stage: "build", Text: "COPY . /src", Source: "local state"},
			{Kind: StepStart, Time: at(1720), Step: 4, Total: 5, Stage: "build", Text: "RUN make test"},
			{Kind: Log, Time: at(2740), Step: 4, Stream: "stdout", Line: "FAIL: TestX"},
			{Kind: StepFailed, Time: at(2800), Step: 4, Duration: 1080 * time.Millisecond, ExitCode: 2},
			{Kind: Warning, Time: at(2810), Message: "cache type=gha could not be read: 503 Service Unavailable"},
			{Kind: Done, Time: at(2820), Summary: &Summary{
				Steps: 9, Cached: 6, Ran: 3, Duration: 12300 * time.Millisecond,
				Caches: []CacheStat{
					{Source: "type=local,src=/c", Hits: 6, BytesRead: 1_200_000, Direction: DirectionImport},
					{Source: "type=local,dest=/c", BytesWritten: 3_400_000, Direction: DirectionExport},
				},
			}},
		},
	},
	{
		// Two stages in parallel: their lines interleave, each says its
		// step. Step 5 fails before it starts, so its title comes with the
		// failure.
		name: "parallel",
		events: []Event{
			{Kind: Info, Time: at(0), Message: "using the copying snapshotter: overlayfs unavailable"},
			{Kind: StepStart, Time: at(10), Step: 1, Total: 6, Stage: "deps", Text: "RUN apk add gcc"},
			{Kind: StepStart, Time: at(20), Step: 3, Total: 6, Stage: "assets", Text: "RUN npm ci"},
			{Kind: Log, Time: at(110), Step: 1, Stream: "stdout", Line: "fetch 1/2\nfetch 2/2"},
			{Kind: Log, Time: at(130), Step: 3, Stream: "stderr", Line: ""},
			{Kind: Log, Step: 3, Stream: "stderr", Line: "a line without a time"},
			{Kind: StepCached, Time: at(140), Step: 2, Total: 6, Stage: "deps", Text: "COPY go.mod /src/", Source: "type=registry,ref=r/cache"},
			{Kind: Warning, Time: at(150), Step: 2, Message: "layer sha256:abc is missing from the cache: running the step"},
			{Kind: StepDone, Time: at(2_010), Step: 1, Duration: 2 * time.Second},
			{Kind: StepDone, Time: at(125_020), Step: 3, Duration: 125 * time.Second},
			{Kind: StepStart, Time: at(125_030), Step: 4, Total: 6, Stage: "final", Text: "COPY --from=deps /out /"},
			{Kind: StepDone, Time: at(125_040), Step: 4, Duration: 10 * time.Millisecond},
			{Kind: StepFailed, Time: at(125_050), Step: 5, Total: 6, Stage: "final", Text: "COPY missing.txt /", Err: "checksumming missing.txt: no such file in the build context"},
			{Kind: Done, Time: at(125_060), Summary: &Summary{
				Steps: 6, Cached: 1, Ran: 3, Duration: 125_060 * time.Millisecond,
				Caches: []CacheStat{
					{Source: "local state"},
					{Source: "type=registry,ref=r/cache", Hits: 1, BytesRead: 999_960, BytesWritten: 5_000_000_000, Direction: DirectionBoth, Requests: ptr(int64(23))},
					{Source: "type=inline", BytesWritten: 0, Direction: DirectionExport},
				},
				Digest: "sha256:8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4",
			}},
		},
	},
	{
		// Misses explained: a changed build arg, the steps after it, a
		// changed file list; a skipped export; the summary's tables.
		name: "misses",
		events: []Event{
			{Kind: StepCached, Time: at(0), Step: 1, Total: 4, Stage: "build", Text: "COPY go.mod /src/", Source: "type=gha,scope=main"},
			{Kind: StepStart, Time: at(10), Step: 2, Total: 4, Stage: "build", Text: "RUN make", Miss: missMake},
			{Kind: StepDone, Time: at(2010), Step: 2, Duration: 2 * time.Second},
			{Kind: StepStart, Time: at(2020), Step: 3, Total: 4, Stage: "build", Text: "COPY src/ /app/", Miss: missCopy},
			{Kind: StepDone, Time: at(2030), Step: 3, Duration: 10 * time.Millisecond},
			{Kind: StepStart, Time: at(2040), Step: 4, Total: 4, Stage: "build", Text: "RUN make | tee <log>", Miss: missAfter},
			{Kind: StepDone, Time: at(3040), Step: 4, Duration: time.Second},
			{Kind: Done, Time: at(3050), Summary: &Summary{
				Steps: 4, Cached: 1, Ran: 3, Duration: 3050 * time.Millisecond,
				Caches: []CacheStat{
					{Source: "type=gha,scope=main", Hits: 1, BytesRead: 2_500_000, Direction: DirectionImport, Requests: ptr(int64(7))},
					{Source: "type=local,dest=/c|d", BytesWritten: 4_000_000, Direction: DirectionExport},
				},
				Digest:  "sha256:8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4",
				Images:  []string{"reg.example/app:1", "reg.example/app:latest"},
				Misses:  []Miss{*missMake, *missCopy, *missAfter},
				Skipped: []Notice{{Source: "type=gha,scope=main", Direction: DirectionExport, Reason: "ACTIONS_CACHE_MODE=read: this job only reads the cache"}},
				Slowest: []StepTime{
					{Step: 2, Stage: "build", Text: "RUN make", Duration: 2 * time.Second},
					{Step: 4, Stage: "build", Text: "RUN make | tee <log>", Duration: time.Second},
				},
			}},
		},
	},
	{
		// What emitters may leave out: stage, total, times, a summary.
		name: "sparse",
		events: []Event{
			{Kind: StepStart, Step: 1, Text: "RUN true"},
			{Kind: StepDone, Step: 1},
			{Kind: StepStart, Step: 2, Stage: "s", Text: "RUN false"},
			{Kind: StepFailed, Step: 2, ExitCode: 1, Err: "running in runc"},
			{Kind: StepCached, Step: 3},
			{Kind: StepFailed, Step: 4},
			{Kind: Log, Step: 6, Line: "output of a step never introduced"},
			{Kind: Kind("progress"), Step: 1, Message: "a kind from a later version"},
			{Kind: Done},
			{Kind: Done, Summary: &Summary{Steps: 1, Ran: 1, Duration: 61 * time.Minute}},
		},
	},
}

func ptr[T any](v T) *T { return &v }

var (
	missMake = &Miss{Step: 2, Stage: "build", Text: "RUN make", Reason: ReasonInputs,
		Cause: "RUN make: build arg VERSION changed", Inputs: []string{"arg:VERSION"}, Against: "local state"}
	missCopy = &Miss{Step: 3, Stage: "build", Text: "COPY src/ /app/", Reason: ReasonParent,
		Cause: "COPY src/ /app/: parent step 2 missed", ParentStep: 2}
	missAfter = &Miss{Step: 4, Stage: "build", Text: "RUN make | tee <log>", Reason: ReasonParent,
		Cause: "RUN make | tee <log>: parent step 3 missed", ParentStep: 3}
)

func TestFailedStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		e    Event
		want string
	}{
		{Event{Kind: StepFailed, ExitCode: 1, Err: "exit code 1"}, "ERROR: exit code 1"},
		{Event{Kind: StepFailed, ExitCode: 2, Err: "running in runc"}, "ERROR: exit code 2: running in runc"},
		{Event{Kind: StepFailed, Err: "exit code 3"}, "ERROR: exit code 3"},
		{Event{Kind: StepFailed}, "ERROR"},
	}
	for _, tt := range tests {
		if got := status(tt.e); got != tt.want {
			t.Errorf("status(%+v) = %q, want %q", tt.e, got, tt.want)
		}
	}
}
