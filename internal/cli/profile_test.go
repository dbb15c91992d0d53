package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestCPUProfile: KILN_CPUPROFILE=F writes a CPU profile (gzipped pprof
// protobuf) to F when the command ends.
func TestCPUProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	var out, errOut bytes.Buffer
	code := Run(context.Background(), Env{Args: []string{"version"}, Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string {
			if k == profileEnv {
				return path
			}
			return ""
		}})
	if code != 0 {
		t.Fatalf("kiln version: exit %d: %s", code, errOut.String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Errorf("%s is not a pprof profile (%d bytes)", path, len(b))
	}
}
