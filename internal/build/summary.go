package build

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/solve"
)

// appendStepSummary appends sum as markdown to the GitHub job summary file
// at path; "" writes nothing. The file is appended to, never replaced:
// other steps of the job write theirs there too.
func appendStepSummary(path string, sum *progress.Summary) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("writing the job summary: %w", err)
	}
	if err := progress.WriteMarkdown(f, sum); err != nil {
		f.Close()
		return fmt.Errorf("writing the job summary %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the job summary %s: %w", path, err)
	}
	return nil
}

// failedSummary is the summary of a build that failed with err: the
// failure, and what solver (nil when the build failed before solving) did
// until then. The failed step counts among the steps.
func failedSummary(opts Options, solver *solve.Solver, err error, d time.Duration) *progress.Summary {
	sum := &progress.Summary{Duration: d, Failure: failureOf(err)}
	if solver != nil {
		st, misses, slowest := solver.SoFar()
		sum.Steps, sum.Cached, sum.Ran = st.Steps, st.Cached, st.Ran
		sum.Misses, sum.Slowest = misses, slowest
		sum.Caches = importStats(opts.CacheFrom, solver.ImportStats(), skippedImports(opts))
	}
	if sum.Failure.Step > 0 {
		sum.Steps++
	}
	return sum
}

// failureOf is what err says about where the build failed. Its Message is
// the first line of what the program prints for err ("kiln: " and the
// error, as cli writes it): the line a GitHub step fails with.
func failureOf(err error) *progress.Failure {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	f := &progress.Failure{Message: "kiln: " + msg}
	var se *solve.StepError
	if errors.As(err, &se) && se.Step != nil {
		f.Step, f.Text, f.Tail = se.Step.Number, se.Step.Text, se.Tail
		if se.Step.Stage != nil {
			f.Stage = se.Step.Stage.Label()
			if se.Platform != "" {
				f.Stage = se.Platform + " " + f.Stage // as progress named it
			}
		}
	}
	return f
}
