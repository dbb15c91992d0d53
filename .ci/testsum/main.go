package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

func main() {
	os.Exit(run(".", os.Args[1:], os.Getenv("KILN_E2E") != "", os.Stdout, os.Stderr))
}

// run runs `go test -json args…` in dir, writes the summary to stdout and
// go test's own stderr to stderr, and returns the exit status. e2e makes a
// skipped test a failure of the run.
func run(dir string, args []string, e2e bool, stdout, stderr io.Writer) int {
	cmd := exec.Command("go", append([]string{"test", "-json"}, args...)...)
	cmd.Dir = dir
	cmd.Stderr = stderr
	events, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintf(stderr, "testsum: %v\n", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "testsum: starting go test: %v\n", err)
		return 1
	}
	s := newSummary(stdout, e2e)
	rerr := s.read(events)
	werr := cmd.Wait()
	status := 0
	var ee *exec.ExitError
	switch {
	case errors.As(werr, &ee):
		status = ee.ExitCode()
	case werr != nil:
		fmt.Fprintf(stderr, "testsum: running go test: %v\n", werr)
		status = 1
	case rerr != nil:
		fmt.Fprintf(stderr, "testsum: reading go test's output: %v\n", rerr)
		status = 1
	}
	return s.finish(status)
}
