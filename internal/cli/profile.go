package cli

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

// profileEnv names the file a CPU profile of this kiln process is
// written to (go tool pprof reads it). It is for measuring kiln, not for
// users: processes kiln starts do not inherit it.
const profileEnv = "KILN_CPUPROFILE"

// startProfile starts the CPU profile KILN_CPUPROFILE asks for and returns
// what stops it; a profile that cannot start is one line on stderr.
func startProfile(getenv func(string) string, stderr io.Writer) (stop func()) {
	path := getenv(profileEnv)
	if path == "" {
		return func() {}
	}
	os.Unsetenv(profileEnv)
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "kiln: %s: %v\n", profileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		fmt.Fprintf(stderr, "kiln: %s: %v\n", profileEnv, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
