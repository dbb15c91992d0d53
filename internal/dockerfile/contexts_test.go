package dockerfile

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/plan"
)

// TestNamedContexts: a --build-context wins over a stage and an image of
// the same name in FROM, COPY --from and RUN --mount from=; a directory
// context is read by name, an image context resolves as an image.
func TestNamedContexts(t *testing.T) {
	const df = `FROM scratch AS src
COPY Dockerfile /wrong

FROM src AS fromdir

FROM base
COPY --from=src /a /a
COPY --from=img /b /b
RUN --mount=type=bind,from=src,target=/m true
`
	opts := Options{Contexts: map[string]NamedContext{
		"src":  {},
		"base": {Image: "alpine:3.20"},
		"img":  {Image: "golang:1.22"},
	}}
	g := mustPlan(t, df, opts)
	last := g.Stages[len(g.Stages)-1]
	if last.Base.Image == nil || last.Base.Image.Ref != "alpine:3.20" {
		t.Fatalf("FROM base: base %+v, want the image context alpine:3.20", last.Base)
	}
	var froms []string
	for _, st := range last.Steps {
		switch {
		case st.Copy != nil && st.Copy.FromContext != "":
			froms = append(froms, "copy context "+st.Copy.FromContext)
		case st.Copy != nil && st.Copy.FromImage != nil:
			froms = append(froms, "copy image "+st.Copy.FromImage.Ref)
		case st.Run != nil:
			froms = append(froms, "mount context "+st.Run.Mounts[0].FromContext)
		}
	}
	if diff := cmp.Diff([]string{"copy context src", "copy image golang:1.22", "mount context src"}, froms); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, st := range g.Stages {
		if st.Name == "src" {
			t.Errorf("stage src is planned, but the context replaces it")
		}
	}
	// FROM a directory context: scratch, then the directory's files.
	opts.Target = "fromdir"
	g = mustPlan(t, df, opts)
	fd := g.Stages[len(g.Stages)-1]
	if len(g.Stages) != 1 || !fd.Base.Scratch || len(fd.Steps) != 1 {
		t.Fatalf("target fromdir: %d stages, base %+v, %d steps; want one scratch stage with one step", len(g.Stages), fd.Base, len(fd.Steps))
	}
	want := &plan.Copy{FromContext: "src", Sources: []string{"."}, Dest: "/"}
	if diff := cmp.Diff(want, fd.Steps[0].Copy); diff != "" || fd.Steps[0].Kind != plan.KindCopy {
		t.Errorf("first step of FROM src (-want +got):\n%s", diff)
	}
}
