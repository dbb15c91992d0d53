package store

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// kill drops s's locks without any clean-up, as kill -9 does.
func kill(s *Store) {
	s.unlockSession()
	s.lock.Close()
}

// leave makes, in s's session, a secret, a bundle with a runtime config and
// a scratch dir, and returns their paths.
func leave(t *testing.T, s *Store) (secret, config, scratch string) {
	t.Helper()
	sd, err := s.SecretDir()
	if err != nil {
		t.Fatal(err)
	}
	bd, err := s.BundleDir()
	if err != nil {
		t.Fatal(err)
	}
	scratch, err = s.TempDir("m")
	if err != nil {
		t.Fatal(err)
	}
	secret, config = filepath.Join(sd, "secret"), filepath.Join(bd, "config.json")
	for _, p := range []string{secret, config} {
		if err := os.WriteFile(p, []byte("hunter2"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return secret, config, scratch
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestSweepDead: the session of a killed build is swept, secrets and
// runtime configs before Reap sees its directories, then Release; the
// session of a running build is not touched.
func TestSweepDead(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	live, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	liveSecret, liveConfig, _ := leave(t, live)

	dead, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	deadSecret, deadConfig, deadScratch := leave(t, dead)
	deadID := dead.Session()
	kill(dead)

	next, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	var reaped, released []string
	hooks := SweepHooks{
		Reap: func(_ context.Context, dir string) error {
			if exists(deadSecret) || exists(deadConfig) {
				t.Errorf("Reap(%s) called while secrets remain", dir)
			}
			reaped = append(reaped, dir)
			return nil
		},
		Release: func(_ context.Context, id string) error { released = append(released, id); return nil },
	}
	n, err := next.SweepDead(ctx, hooks)
	if err != nil || n != 1 {
		t.Fatalf("SweepDead = %d, %v; want 1 session swept", n, err)
	}
	// The secret dir is gone before Reap: the bundle and the scratch dir.
	if len(reaped) != 2 || !slices.Contains(reaped, deadScratch) {
		t.Errorf("reaped %v, want the dead session's bundle and scratch dirs", reaped)
	}
	for _, d := range reaped {
		if !strings.Contains(d, deadID) {
			t.Errorf("reaped %s, outside the dead session", d)
		}
	}
	if !slices.Equal(released, []string{deadID}) {
		t.Errorf("released %v, want [%s]", released, deadID)
	}
	if exists(filepath.Join(root, tmpDir, deadID)) {
		t.Errorf("the dead session's dir is still there")
	}
	if !exists(liveSecret) || !exists(liveConfig) {
		t.Errorf("the running build's secret or config is gone")
	}
	// Swept once: a second sweep finds nothing.
	if n, err := next.SweepDead(ctx, hooks); err != nil || n != 0 {
		t.Errorf("second SweepDead = %d, %v; want 0", n, err)
	}
}

// TestPruneSweepsDeadSessions: Prune runs the hooks on a killed build's
// leftovers too, and its Freed is what the state dir really lost.
func TestPruneSweepsDeadSessions(t *testing.T) {
	root := t.TempDir()
	dead, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	secret, _, scratch := leave(t, dead)
	big := make([]byte, 1<<20)
	if err := os.WriteFile(filepath.Join(scratch, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	// A second link to the same file: counted once.
	if err := os.Link(filepath.Join(scratch, "big"), filepath.Join(scratch, "big2")); err != nil {
		t.Fatal(err)
	}
	kill(dead)
	before, _ := Usage(root)
	var reaped int
	rep, err := Prune(context.Background(), root, PruneOptions{Hooks: SweepHooks{
		Reap: func(context.Context, string) error { reaped++; return nil },
	}})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := Usage(root)
	if reaped != 2 {
		t.Errorf("Prune reaped %d dirs, want 2 (bundle, scratch)", reaped)
	}
	if exists(secret) {
		t.Errorf("secret left after Prune")
	}
	if rep.Freed != before-after || rep.Freed < 1<<20 || rep.Freed >= 2<<20 {
		t.Errorf("Freed = %d, want %d (1 MiB once, not per link)", rep.Freed, before-after)
	}
}
