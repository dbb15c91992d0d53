package solve

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/plan"
)

// preparedCopy plans df (one COPY or ADD) over the context dir and returns
// that step prepared, as the solver prepares it before asking for its key.
func preparedCopy(t *testing.T, dir, df string) (*build, *prepared) {
	t.Helper()
	b := newEnv(t).newBuild(dir, df, Options{})
	var step *plan.Step
	for _, st := range b.graph.Stages {
		for _, s := range st.Steps {
			if s.Kind == plan.KindCopy {
				step = s
			}
		}
	}
	p, err := b.s.prepareCopy(context.Background(), step, &state{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.release)
	return b, p
}

// TestCopySourcesChangedSinceKey: a COPY or ADD whose context sources
// change after the digest that made its key fails rather than copying
// content the key does not describe (which would be cached under it and
// given to a later build of the old content), whatever ran in between:
// nothing, the per-file digests a miss takes for its record, or another
// step's digest of the same files. A file only touched digests as before
// and copies.
func TestCopySourcesChangedSinceKey(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		df      string
		between func(t *testing.T, b *build, p *prepared, dir string)
		changed bool
	}{
		{"nothing between", "FROM scratch\nCOPY src/ /src/\n", func(*testing.T, *build, *prepared, string) {}, true},
		{"the record's per-file digests", "FROM scratch\nCOPY src/ /src/\n", func(t *testing.T, _ *build, p *prepared, _ string) {
			if _, err := p.fileSums(ctx); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"another step's digest", "FROM scratch\nCOPY src/ /src/\n", func(t *testing.T, b *build, _ *prepared, _ string) {
			m, err := b.s.opts.Context.Select([]string{"src/"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.s.opts.Context.Digest(ctx, m); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"ADD of an archive", "FROM scratch\nADD app.tar /app/\n", func(*testing.T, *build, *prepared, string) {}, true},
		{"only touched", "FROM scratch\nCOPY src/ /src/\n", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeContext(t, map[string]string{"src/a.txt": "a", "src/b.txt": "b"})
			writeTar(t, filepath.Join(dir, "app.tar"), "app", "old")
			b, p := preparedCopy(t, dir, c.df)
			if _, err := p.key(ctx); err != nil {
				t.Fatal(err)
			}
			if c.changed {
				writeFile(t, filepath.Join(dir, "src", "b.txt"), "changed after the key")
				writeTar(t, filepath.Join(dir, "app.tar"), "app", "new and longer")
				c.between(t, b, p, dir)
			} else {
				later := time.Now().Add(time.Hour)
				if err := os.Chtimes(filepath.Join(dir, "src", "b.txt"), later, later); err != nil {
					t.Fatal(err)
				}
			}
			err := p.exec(ctx, t.TempDir())
			if c.changed && !errors.Is(err, errSourcesChanged) {
				t.Fatalf("copy after its sources changed: %v, want errSourcesChanged", err)
			}
			if !c.changed && err != nil {
				t.Fatalf("copy after a touch: %v", err)
			}
		})
	}
}

// writeTar writes at p a tar archive of one file name holding body.
func writeTar(t *testing.T, p, name, body string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBindSourceChangedSinceKey: a RUN's bind mount of the context, staged
// by a copy, fails as a COPY does when its sources changed after the
// digest that went into the RUN's key.
func TestBindSourceChangedSinceKey(t *testing.T) {
	dir := writeContext(t, map[string]string{"src/a.txt": "a"})
	b := newEnv(t).newBuild(dir, "FROM scratch\nCOPY busybox /bin/busybox\n", Options{})
	ctx := context.Background()
	get, _, release, err := b.s.bindSource(ctx, plan.Mount{Type: plan.MountBind, Source: "src", Target: "/src"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	writeFile(t, filepath.Join(dir, "src", "a.txt"), "changed after the key")
	if _, err := get(ctx); !errors.Is(err, errSourcesChanged) {
		t.Fatalf("staging a bind mount whose sources changed: %v, want errSourcesChanged", err)
	}
}
