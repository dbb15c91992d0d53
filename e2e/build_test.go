package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// setup starts a registry holding a busybox base image and returns the
// registry address and the base image reference. It requires what every
// build with a RUN step needs: root and runc (docker-registry and busybox
// are required by the helpers that use them).
func setup(t *testing.T) (string, string) {
	t.Helper()
	imagetest.Require(t, "root", "runc")
	reg := startRegistry(t, "")
	base := reg + "/base/busybox:1"
	imagetest.Push(t, imagetest.Busybox(t), base)
	return reg, base
}

// ranSteps returns the step numbers that executed (not cached), from plain
// progress output.
func ranSteps(stderr string) []string {
	re := regexp.MustCompile(`(?m)^#(\d+) DONE`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(stderr, -1) {
		out = append(out, m[1])
	}
	return out
}

const appDockerfile = `FROM {{BASE}} AS build
ARG VERSION=1
ENV APP_HOME=/app
WORKDIR $APP_HOME
COPY go.mod ./
RUN echo "deps for $(cat go.mod)" > deps.txt
COPY src/ ./src/
RUN cat src/*.txt > all.txt && echo "v$VERSION" >> all.txt

FROM {{BASE}}
LABEL org.example.app=demo
USER app
COPY --from=build --chown=app /app/all.txt /home/app/all.txt
EXPOSE 8080
ENTRYPOINT ["cat"]
CMD ["/home/app/all.txt"]
`

func appContext(t *testing.T, base string) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile":    strings.ReplaceAll(appDockerfile, "{{BASE}}", base),
		"go.mod":        "module example\n",
		"src/a.txt":     "alpha\n",
		"src/b.txt":     "beta\n",
		"README.md":     "ignored\n",
		".dockerignore": "README.md\n",
	})
	return dir
}

func TestBuildPushAndRebuild(t *testing.T) {
	reg, base := setup(t)
	ctxDir := appContext(t, base)
	state := filepath.Join(t.TempDir(), "state")
	tag := reg + "/app/demo:latest"
	md := filepath.Join(t.TempDir(), "md.json")
	out := filepath.Join(t.TempDir(), "rootfs")

	first := mustKiln(t, state, nil, "build", "--progress", "plain", "--push", "-t", tag,
		"--metadata-file", md, "-o", "type=local,dest="+out, ctxDir)
	digest := strings.TrimSpace(first.stdout)
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("stdout %q is not a digest", first.stdout)
	}
	if got := len(ranSteps(first.stderr)); got != 5 {
		t.Errorf("first build ran %d steps, want 5 (2 RUN, 3 COPY)\n%s", got, first.stderr)
	}

	// The pushed image is the one built, and it is valid.
	ref, _ := name.ParseReference(tag, name.Insecure)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pulling %s: %v", tag, err)
	}
	imagetest.Check(t, img)
	if d, _ := img.Digest(); d.String() != digest {
		t.Errorf("registry has %s, kiln printed %s", d, digest)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "app" || c.Labels["org.example.app"] != "demo" || strings.Join(c.Entrypoint, " ") != "cat" ||
		strings.Join(c.Cmd, " ") != "/home/app/all.txt" {
		t.Errorf("config = %+v", c)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports = %v, want 8080/tcp", c.ExposedPorts)
	}

	// The local output holds the file, owned by app (1000).
	b, err := os.ReadFile(filepath.Join(out, "home/app/all.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "alpha\nbeta\nv1\n" {
		t.Errorf("all.txt = %q", b)
	}
	fi, _ := os.Stat(filepath.Join(out, "home/app/all.txt"))
	if uid := statUID(fi); uid != 1000 {
		t.Errorf("all.txt uid = %d, want 1000 (--chown=app)", uid)
	}

	// Metadata file.
	var meta map[string]any
	mb, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(mb, &meta); err != nil {
		t.Fatal(err)
	}
	if meta["containerimage.digest"] != digest || meta["image.name"] != tag {
		t.Errorf("metadata = %s", mb)
	}
	if s, _ := meta["containerimage.config.digest"].(string); !strings.HasPrefix(s, "sha256:") {
		t.Errorf("metadata has no config digest: %s", mb)
	}

	// Nothing changed: no step runs, same digest.
	second := mustKiln(t, state, nil, "build", "--progress", "plain", "--push", "-t", tag, ctxDir)
	if got := ranSteps(second.stderr); len(got) != 0 {
		t.Errorf("unchanged rebuild ran steps %v\n%s", got, second.stderr)
	}
	if strings.TrimSpace(second.stdout) != digest {
		t.Errorf("unchanged rebuild gave %s, want %s", second.stdout, digest)
	}

	// An ignored file changes: still nothing runs.
	writeFiles(t, ctxDir, map[string]string{"README.md": "changed\n"})
	third := mustKiln(t, state, nil, "build", "--progress", "plain", ctxDir)
	if got := ranSteps(third.stderr); len(got) != 0 {
		t.Errorf("rebuild after changing an ignored file ran steps %v", got)
	}

	// One file under src/ changes: the COPY src/ and everything after it
	// rerun; the go.mod COPY and its RUN stay cached.
	writeFiles(t, ctxDir, map[string]string{"src/b.txt": "BETA\n"})
	fourth := mustKiln(t, state, nil, "build", "--progress", "plain", ctxDir)
	ran := ranSteps(fourth.stderr)
	if len(ran) != 3 {
		t.Errorf("after changing src/b.txt ran %d steps (%v), want 3 (COPY src, RUN, COPY --from)\n%s", len(ran), ran, fourth.stderr)
	}
	if !regexp.MustCompile(`(?m)^#\d+ CACHED`).MatchString(fourth.stderr) {
		t.Errorf("no step was cached after changing one file\n%s", fourth.stderr)
	}

	// A build arg changes: only the RUN that uses it (and what follows).
	fifth := mustKiln(t, state, nil, "build", "--progress", "plain", "--build-arg", "VERSION=2", ctxDir)
	if got := len(ranSteps(fifth.stderr)); got != 4 {
		t.Errorf("after --build-arg VERSION=2 ran %d steps, want 4 (both RUNs see VERSION in env, COPY --from)\n%s", got, fifth.stderr)
	}
}

func TestConcurrentBuildsShareState(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	state := filepath.Join(t.TempDir(), "state")
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = kiln(t, state, nil, "build", "--progress", "plain", ctxDir)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("build %d: exit %d\n%s", i, r.code, r.stderr)
		}
	}
	if results[0].stdout != results[1].stdout {
		t.Errorf("concurrent builds gave different digests: %s vs %s", results[0].stdout, results[1].stdout)
	}
	if ran := len(ranSteps(results[0].stderr)) + len(ranSteps(results[1].stderr)); ran != 5 {
		t.Errorf("two concurrent builds ran %d steps in all, want 5 (each step once)", ran)
	}
}
