package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/imagetest"
)

const featuresDockerfile = `ARG BASE={{BASE}}
ARG GLOBAL=global-default
ARG UNSCOPED=never-seen
FROM $BASE AS base
ARG GLOBAL
ARG STAGEARG=stage-default
ARG FROMFLAG=flag-default
ENV GREETING="hello world" OTHER=x
RUN ["/bin/sh", "-c", "echo exec-form:$GREETING > /exec.txt"]
RUN echo "$GLOBAL|$STAGEARG|$FROMFLAG|$UNSCOPED|" > /args.txt
SHELL ["/bin/sh", "-e", "-c"]
RUN echo "shell:$0" > /shell.txt
RUN <<EOF
echo heredoc-line-1 > /heredoc.txt
echo heredoc-line-2 >> /heredoc.txt
EOF
RUN <<EOT
#!/bin/sh
echo "script:$0" > /script.txt
EOT
COPY <<EOF /inline.txt
inline body
EOF

FROM base AS final
WORKDIR /work
COPY conf/*.conf /etc/app/
COPY --chmod=0750 bin.sh /usr/local/bin/
COPY --chown=app:app owned.txt ./
ADD archive.tar.gz /opt/
COPY *.md /docs/
USER app
WORKDIR /home/app/src
RUN id -u > /tmp/uid && id -g > /tmp/gid && pwd > /tmp/pwd && echo "$GREETING" > /tmp/env && touch made-by-app
LABEL org.example.a=1 "org.example.b"="two words"
EXPOSE 8080 53/udp
VOLUME ["/data"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD wget -q -O- http://localhost/ || exit 1
STOPSIGNAL SIGTERM
ONBUILD RUN echo triggered > /onbuild.txt
`

// tarGz returns a .tar.gz holding files (name → content) and a directory.
func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	mtime := time.Unix(1600000000, 0)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "pkg/", Mode: 0o755, ModTime: mtime}); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c := files[n]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o600, Size: int64(len(c)), ModTime: mtime}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDockerfileFeatures builds one Dockerfile that uses most of the
// language and checks the result through the image config and the local
// output.
func TestDockerfileFeatures(t *testing.T) {
	_, base := setup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{
		"Dockerfile":    strings.ReplaceAll(featuresDockerfile, "{{BASE}}", base),
		"conf/a.conf":   "a\n",
		"conf/b.conf":   "b\n",
		"conf/c.txt":    "not a conf\n",
		"bin.sh":        "#!/bin/sh\necho bin\n",
		"owned.txt":     "owned\n",
		"README.md":     "ignored\n",
		"KEEP.md":       "kept\n",
		"NOTES.md":      "ignored too\n",
		".dockerignore": "*.md\n!KEEP.md\n",
	})
	if err := os.WriteFile(filepath.Join(ctxDir, "archive.tar.gz"), tarGz(t, map[string]string{"pkg/hello.txt": "hello from tar\n"}), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ociTar := filepath.Join(out, "img.tar")
	root := filepath.Join(out, "rootfs")
	mustKiln(t, filepath.Join(t.TempDir(), "state"), nil, "build", "--progress", "plain",
		"--build-arg", "FROMFLAG=from-cli", "--build-arg", "UNSCOPED=cli-unscoped",
		"-o", "type=oci,dest="+ociTar, "-o", "type=local,dest="+root, ctxDir)

	img, _ := ociImageFile(t, ociTar)
	imagetest.Check(t, img)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if !slices.Contains(c.Env, "GREETING=hello world") || !slices.Contains(c.Env, "OTHER=x") {
		t.Errorf("Env = %v", c.Env)
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e, "GLOBAL=") || strings.HasPrefix(e, "FROMFLAG=") {
			t.Errorf("build arg %s leaked into the config's Env", e)
		}
	}
	if c.User != "app" || c.WorkingDir != "/home/app/src" {
		t.Errorf("User %q WorkingDir %q, want app and /home/app/src", c.User, c.WorkingDir)
	}
	if c.Labels["org.example.a"] != "1" || c.Labels["org.example.b"] != "two words" {
		t.Errorf("Labels = %v", c.Labels)
	}
	for _, p := range []string{"8080/tcp", "53/udp"} {
		if _, ok := c.ExposedPorts[p]; !ok {
			t.Errorf("ExposedPorts = %v, want %s", c.ExposedPorts, p)
		}
	}
	if _, ok := c.Volumes["/data"]; !ok || len(c.Volumes) != 1 {
		t.Errorf("Volumes = %v, want /data", c.Volumes)
	}
	if !slices.Equal(c.Entrypoint, []string{"/bin/sh", "-c"}) || !slices.Equal(c.Cmd, []string{"echo hi"}) {
		t.Errorf("Entrypoint %q Cmd %q", c.Entrypoint, c.Cmd)
	}
	if !slices.Equal(c.Shell, []string{"/bin/sh", "-e", "-c"}) {
		t.Errorf("Shell = %q", c.Shell)
	}
	if h := c.Healthcheck; h == nil || !slices.Equal(h.Test, []string{"CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"}) ||
		h.Interval != 30*time.Second || h.Timeout != 5*time.Second || h.Retries != 3 {
		t.Errorf("Healthcheck = %+v", c.Healthcheck)
	}
	if c.StopSignal != "SIGTERM" {
		t.Errorf("StopSignal = %q", c.StopSignal)
	}
	if !slices.Equal(c.OnBuild, []string{"RUN echo triggered > /onbuild.txt"}) {
		t.Errorf("OnBuild = %q", c.OnBuild)
	}
	assertAbsent(t, filepath.Join(root, "onbuild.txt")) // recorded, not run

	files := map[string]string{
		"exec.txt":                 "exec-form:hello world\n",
		"args.txt":                 "global-default|stage-default|from-cli||\n",
		"shell.txt":                "shell:/bin/sh\n",
		"heredoc.txt":              "heredoc-line-1\nheredoc-line-2\n",
		"script.txt":               "script:/dev/pipes/EOT\n",
		"inline.txt":               "inline body\n",
		"etc/app/a.conf":           "a\n",
		"etc/app/b.conf":           "b\n",
		"usr/local/bin/bin.sh":     "#!/bin/sh\necho bin\n",
		"work/owned.txt":           "owned\n",
		"opt/pkg/hello.txt":        "hello from tar\n",
		"docs/KEEP.md":             "kept\n",
		"tmp/uid":                  "1000\n",
		"tmp/gid":                  "1000\n",
		"tmp/pwd":                  "/home/app/src\n",
		"home/app/src/made-by-app": "",
		"tmp/env":                  "hello world\n",
	}
	for p, want := range files {
		if got := readFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("/%s = %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"etc/app/c.txt", "opt/archive.tar.gz", "docs/README.md", "docs/NOTES.md", "dev/pipes"} {
		assertAbsent(t, filepath.Join(root, p))
	}
	if fi, _ := lstat(t, filepath.Join(root, "usr/local/bin/bin.sh")); fi != nil && fi.Mode().Perm() != 0o750 {
		t.Errorf("bin.sh mode %v, want 0750 (--chmod)", fi.Mode())
	}
	if fi, st := lstat(t, filepath.Join(root, "work/owned.txt")); fi != nil && (st.Uid != 1000 || st.Gid != 1000) {
		t.Errorf("owned.txt owner %d:%d, want 1000:1000 (--chown=app:app)", st.Uid, st.Gid)
	}
	// WORKDIR under USER app: created owned by app, who can write there.
	for _, p := range []string{"home/app", "home/app/src", "home/app/src/made-by-app"} {
		if fi, st := lstat(t, filepath.Join(root, p)); fi != nil && st.Uid != 1000 {
			t.Errorf("/%s owned by %d, want 1000 (WORKDIR under USER app)", p, st.Uid)
		}
	}
	if fi, st := lstat(t, filepath.Join(root, "etc/app/a.conf")); fi != nil && (st.Uid != 0 || fi.Mode().Perm() != 0o644) {
		t.Errorf("a.conf: mode %v uid %d, want 0644 root", fi.Mode(), st.Uid)
	}
	// ADD keeps the archive's own modes.
	if fi, _ := lstat(t, filepath.Join(root, "opt/pkg/hello.txt")); fi != nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("opt/pkg/hello.txt mode %v, want 0600 from the archive", fi.Mode())
	}
}

const targetDockerfile = `# escape=` + "`" + `
FROM {{BASE}} AS one
RUN echo one > /one.txt && ` + "`" + `
    echo continued >> /one.txt
ONBUILD RUN echo fired > /onbuild.txt
ENV WINPATH=C:\dir\file

FROM one AS two
COPY --from={{OTHER}} /payload.txt /from-image.txt
RUN cat /one.txt > /two.txt && echo "$WINPATH" > /winpath.txt

FROM two AS broken
RUN echo should-not-run && exit 42
`

// TestTargetAndStages: the escape directive, --target (a later stage that
// would fail is never run), COPY --from an image reference, FROM an earlier
// stage, and ONBUILD triggers firing once in the stage built on them.
func TestTargetAndStages(t *testing.T) {
	reg, base := setup(t)

	// An image to copy from, built and pushed by kiln from scratch.
	otherCtx := t.TempDir()
	writeFiles(t, otherCtx, map[string]string{
		"Dockerfile":  "FROM scratch\nCOPY payload.txt /\n",
		"payload.txt": "payload from an image\n",
	})
	other := reg + "/other/payload:1"
	mustKiln(t, filepath.Join(t.TempDir(), "state"), nil, "build", "--progress", "plain", "--push", "-t", other, otherCtx)

	ctxDir := t.TempDir()
	df := strings.NewReplacer("{{BASE}}", base, "{{OTHER}}", other).Replace(targetDockerfile)
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": df})
	root := filepath.Join(t.TempDir(), "rootfs")
	ociTar := filepath.Join(t.TempDir(), "img.tar")
	state := filepath.Join(t.TempDir(), "state")
	r := mustKiln(t, state, nil, "build", "--progress", "plain", "--target", "two",
		"-o", "type=local,dest="+root, "-o", "type=oci,dest="+ociTar, ctxDir)
	if strings.Contains(r.stderr, "should-not-run") || strings.Contains(r.stderr, "exit 42") {
		t.Errorf("the stage after --target ran:\n%s", r.stderr)
	}
	for p, want := range map[string]string{
		"one.txt":        "one\ncontinued\n",
		"two.txt":        "one\ncontinued\n",
		"from-image.txt": "payload from an image\n",
		"onbuild.txt":    "fired\n",
		"winpath.txt":    `C:\dir\file` + "\n",
	} {
		if got := readFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("/%s = %q, want %q", p, got, want)
		}
	}
	img, _ := ociImageFile(t, ociTar)
	imagetest.Check(t, img)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.Config.OnBuild) != 0 {
		t.Errorf("the triggers were not cleared after firing: OnBuild = %q", cf.Config.OnBuild)
	}

	// Without --target the last stage is built, and its RUN fails.
	r = kiln(t, state, nil, "build", "--progress", "plain", ctxDir)
	if r.code != 1 || !strings.Contains(r.stderr, "exit code 42") {
		t.Errorf("building the broken last stage: exit %d, want 1 and exit code 42\n%s", r.code, r.stderr)
	}
}
