package dockerfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/plan"
)

var update = flag.Bool("update", false, "rewrite testdata/*/want from the current output")

// fakeImages are the images the fake resolver knows.
var fakeImages = map[string]v1.Config{
	"busybox": {
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd: []string{"sh"},
	},
	"alpine:3.20": {
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd: []string{"/bin/sh"},
	},
	"golang:1.22": {
		Env:        []string{"PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOPATH=/go"},
		WorkingDir: "/go",
	},
	"busybox@sha256:" + strings.Repeat("ab", 32): {
		Env: []string{"PATH=/bin"},
	},
	"example.com/onbuild:1": {
		Env:     []string{"PATH=/usr/bin:/bin"},
		OnBuild: []string{"COPY . /app/", "RUN make -C /app"},
	},
}

// fakeResolver is a ResolveImage over fakeImages that records its calls.
type fakeResolver struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeResolver) resolve(_ context.Context, ref string, _ v1.Platform) (*plan.Image, error) {
	f.mu.Lock()
	f.calls = append(f.calls, ref)
	f.mu.Unlock()
	cfg, ok := fakeImages[ref]
	if !ok {
		return nil, errors.New("image not found")
	}
	sum := sha256.Sum256([]byte(ref))
	return &plan.Image{
		Ref:    ref,
		Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])},
		Config: &v1.ConfigFile{Author: "upstream", Config: cloneConfig(cfg)},
	}, nil
}

// goldenOptions are the options of the golden cases that need some.
var goldenOptions = map[string]Options{
	"args":       {BuildArgs: map[string]string{"FROMCLI": "cli", "TAG": "", "NOTDECLARED": "x"}},
	"multistage": {Network: "host"},
	"mounts":     {Network: "host"},
}

func TestPlanGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 10 {
		t.Fatalf("found %d golden cases, want at least 10", len(dirs))
	}
	for _, df := range dirs {
		dir := filepath.Dir(df)
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(df)
			if err != nil {
				t.Fatal(err)
			}
			opts := goldenOptions[name]
			opts.ResolveImage = (&fakeResolver{}).resolve
			g, err := Plan(context.Background(), src, opts)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			got := dump(g)
			wantFile := filepath.Join(dir, "want")
			if *update {
				if err := os.WriteFile(wantFile, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("plan dump differs from %s (-want +got):\n%s", wantFile, diff)
			}
		})
	}
}

// dump renders a graph as stable, readable text.
func dump(g *plan.Graph) string {
	var b strings.Builder
	fmt.Fprintf(&b, "steps=%d target=%s unused-args=%s\n", g.Steps, g.Target.Label(), js(g.UnusedArgs))
	for _, s := range g.Stages {
		fmt.Fprintf(&b, "\nstage %s (index %d, %s:%d) base=%s author=%q\n", s.Label(), s.Index, s.Pos.File, s.Pos.Line, base(s.Base), s.Author)
		for _, st := range s.Steps {
			dumpStep(&b, st)
		}
		var cfg strings.Builder
		enc := json.NewEncoder(&cfg)
		enc.SetEscapeHTML(false)
		enc.SetIndent("  ", "  ")
		if err := enc.Encode(s.Config); err != nil {
			panic(err)
		}
		fmt.Fprintf(&b, "  config: %s", cfg.String())
	}
	return b.String()
}

func dumpStep(b *strings.Builder, st *plan.Step) {
	kind := map[plan.Kind]string{plan.KindConfig: "CONFIG", plan.KindRun: "RUN", plan.KindCopy: "COPY", plan.KindMkdir: "MKDIR"}[st.Kind]
	fmt.Fprintf(b, "  [%d] %s line %d %q\n", st.Number, kind, st.Pos.Line, st.Text)
	for _, m := range st.Mkdirs {
		fmt.Fprintf(b, "      mkdir dir=%q user=%q\n", m.Dir, m.User)
	}
	if r := st.Run; r != nil {
		fmt.Fprintf(b, "      args=%s\n", js(r.Args))
		fmt.Fprintf(b, "      env=%s\n", js(r.Env))
		fmt.Fprintf(b, "      workdir=%q user=%q network=%q\n", r.WorkDir, r.User, r.Network)
		for _, m := range r.Mounts {
			fmt.Fprintf(b, "      mount type=%s target=%q source=%q from=%s id=%q ro=%t sharing=%q required=%t env=%q mode=%o uid=%d gid=%d size=%d\n",
				m.Type, m.Target, m.Source, fromOf(m.FromStage, m.FromImage), m.ID, m.ReadOnly, m.Sharing, m.Required, m.Env, m.Mode, m.UID, m.GID, m.Size)
		}
		for _, f := range r.Files {
			fmt.Fprintf(b, "      file %q %q\n", f.Name, f.Data)
		}
	}
	if c := st.Copy; c != nil {
		fmt.Fprintf(b, "      add=%t from=%s sources=%s dest=%q chown=%q chmod=%q link=%t user=%q\n",
			c.Add, fromOf(c.FromStage, c.FromImage), js(c.Sources), c.Dest, c.Chown, c.Chmod, c.Link, c.User)
		for _, f := range c.Inline {
			fmt.Fprintf(b, "      inline %q %q\n", f.Name, f.Data)
		}
	}
}

func base(b plan.Base) string {
	switch {
	case b.Scratch:
		return "scratch"
	case b.Stage != nil:
		return "stage:" + b.Stage.Label()
	case b.Image != nil:
		return "image:" + b.Image.Ref + "@" + b.Image.Digest.String()[:19]
	}
	return "NONE"
}

func fromOf(s *plan.Stage, img *plan.Image) string {
	switch {
	case s != nil:
		return "stage:" + s.Label()
	case img != nil:
		return "image:" + img.Ref
	}
	return "context"
}

func js(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
