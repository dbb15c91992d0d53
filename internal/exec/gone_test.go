package exec

import (
	"encoding/json"
	"errors"
	"os"
	osexec "os/exec"
	"path/filepath"
	"testing"
)

// TestRunGoneWithoutDelete: after "runtime run" ends, with exit 0 or not,
// the runtime holds no state of the container (so Run skips the delete),
// and no container of the bundle is listed.
func TestRunGoneWithoutDelete(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		path, err := osexec.LookPath(rt)
		if err != nil {
			t.Fatal(err)
		}
		r := ociRuntime{path: path}
		for _, args := range [][]string{{"/bin/true"}, {"/bin/sh", "-c", "exit 3"}} {
			bundle := t.TempDir()
			_, _, err := run(t, Spec{Runtime: rt, Args: args, BundleDir: bundle})
			var ee *ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatalf("%v: %v", args, err)
			}
			var rec containerRecord
			b, rerr := os.ReadFile(filepath.Join(bundle, recordFile))
			if rerr != nil || json.Unmarshal(b, &rec) != nil || rec.ID == "" {
				t.Fatalf("reading the container record: %v %s", rerr, b)
			}
			if !r.stateGone(rec.ID) {
				t.Errorf("%v: the runtime still has state of %s after run", args, rec.ID)
			}
			if ids := containersIn(t, rt, bundle); len(ids) != 0 {
				t.Errorf("%v: containers left: %v", args, ids)
			}
		}
		// A container the runtime still has state of is not gone.
		root := map[string]string{"runc": "/run/runc", "crun": "/run/crun"}[rt]
		if _, err := os.Stat(root); err != nil {
			t.Fatalf("%s keeps no state in %s: %v", rt, root, err)
		}
		id := "kiln-test-gone-" + filepath.Base(t.TempDir())
		if err := os.Mkdir(filepath.Join(root, id), 0o700); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(root, id))
		if r.stateGone(id) {
			t.Error("a container with a state dir counts as gone")
		}
	})
}
