package build

import (
	"fmt"
	"os"

	"github.com/kiln-build/kiln/internal/progress"
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
