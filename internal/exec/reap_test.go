package exec

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReap: Reap finds, from the bundle alone, the container a Run made
// there, and kills and deletes it (as the next build does for a killed
// one); on a directory that is no bundle it does nothing.
func TestReap(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		bundle := t.TempDir()
		started := &notifyWriter{want: "started\n", f: func() {}}
		done := make(chan error, 1)
		go func() {
			done <- Run(context.Background(), Spec{Runtime: rt, Root: newRoot(t), BundleDir: bundle,
				Args: []string{"/bin/sh", "-c", "echo started; sleep 300"}, Stdout: started, Stderr: io.Discard})
		}()
		deadline := time.Now().Add(30 * time.Second)
		for {
			started.mu.Lock()
			ok := started.f == nil
			started.mu.Unlock()
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("container did not start")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := Reap(bundle); err != nil {
			t.Fatalf("Reap: %v", err)
		}
		if ids := containersIn(t, rt, bundle); len(ids) != 0 {
			t.Errorf("containers left after Reap: %v", ids)
		}
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("the container's Run did not end after Reap")
		}
		if _, err := os.Stat(filepath.Join(bundle, recordFile)); !os.IsNotExist(err) {
			t.Errorf("record left after Reap: %v", err)
		}
		if err := Reap(t.TempDir()); err != nil {
			t.Errorf("Reap of an empty dir: %v", err)
		}
	})
}

func TestReapRefusesForeignRecords(t *testing.T) {
	for _, rec := range []string{`{"runtime":"runc","id":"kiln-00000000000000000000"}`, `{"runtime":"/bin/true","id":"../x"}`, `nope`,
		`{"runtime":"/bin/true","id":"kiln-00000000000000000000","cgroups":["/sys/fs/cgroup/pids/x"]}`,
		`{"runtime":"/bin/true","id":"kiln-00000000000000000000","cgroups":["/sys/fs/cgroup/../../tmp/kiln-00000000000000000000"]}`,
		`{"runtime":"/bin/true","id":"kiln-00000000000000000000","cgroups":["/tmp/kiln-00000000000000000000"]}`} {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, recordFile), []byte(rec), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Reap(d); err == nil {
			t.Errorf("Reap of record %s: no error", rec)
		}
	}
}
