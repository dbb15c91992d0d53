package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// busyboxArm64Path is where `.ci/deps test` unpacks Debian's arm64
// busybox-static (the same path as internal/imagetest.BusyboxArm64Path).
const busyboxArm64Path = "/var/cache/kiln-test/busybox-arm64/bin/busybox"

// platformDockerfile is the -platforms project: a stage built once on the
// build platform (FROM --platform=$BUILDPLATFORM) that makes ~3 MB of
// data, and a target stage per platform that installs that platform's
// busybox, copies the data in and hashes and compresses (under QEMU for
// arm64). It needs no registry: both bases are FROM scratch.
const platformDockerfile = `FROM --platform=$BUILDPLATFORM scratch AS data
ARG BUILDARCH
COPY busybox-${BUILDARCH} /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir /out && /bin/busybox seq 1 400000 > /out/numbers"]
FROM scratch
ARG TARGETARCH
COPY busybox-${TARGETARCH} /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY --from=data /out /data
RUN uname -m > /arch && gzip -9 -c /data/numbers > /numbers.gz && sha256sum /data/numbers /numbers.gz > /sums
`

// platformCase is one timed build of the -platforms project.
type platformCase struct {
	name      string
	platforms string
	warm      bool // from the local cache of the cold build, into a new state dir
}

var platformCases = []platformCase{
	{"linux/amd64, cold", "linux/amd64", false},
	{"linux/arm64 (QEMU), cold", "linux/arm64", false},
	{"linux/amd64 + linux/arm64, cold", "linux/amd64,linux/arm64", false},
	{"linux/amd64 + linux/arm64, warm (local cache, new state dir)", "linux/amd64,linux/arm64", true},
}

// platformMode times the two-platform build of platformDockerfile cold
// and warm (the medians of o.runs), beside the single-platform builds, and
// prints a markdown table. It needs root, runc, both busyboxes and a
// binfmt_misc handler for arm64 (kiln binfmt says whether there is one).
func platformMode(ctx context.Context, o options) (int, error) {
	if err := checkMachine(); err != nil {
		return 2, err
	}
	if _, err := os.Stat(busyboxArm64Path); err != nil {
		return 2, fmt.Errorf("%s is missing (.ci/deps test downloads it)", busyboxArm64Path)
	}
	work, err := os.MkdirTemp(o.dir, "kiln-bench-platform-")
	if err != nil {
		return 2, fmt.Errorf("making the work dir: %w", err)
	}
	defer func() {
		detachMounts(work)
		os.RemoveAll(work)
	}()
	kiln, err := findKiln(ctx, o.kiln, work)
	if err != nil {
		return 2, err
	}
	ctxDir := filepath.Join(work, "context")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		return 2, err
	}
	for arch, src := range map[string]string{"amd64": busyboxPath, "arm64": busyboxArm64Path} {
		if err := copyFile(src, filepath.Join(ctxDir, "busybox-"+arch), 0o755); err != nil {
			return 2, err
		}
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(platformDockerfile), 0o644); err != nil {
		return 2, err
	}
	var log io.Writer = io.Discard
	if o.v {
		log = os.Stderr
	}
	times := map[string][]time.Duration{}
	ran := map[string]int{}
	for run := 0; run < o.runs; run++ {
		cache := filepath.Join(work, fmt.Sprintf("cache-%d", run))
		for i, c := range platformCases {
			dir := filepath.Join(work, fmt.Sprintf("run-%d-%d", run, i))
			s := buildSpec{context: ctxDir, state: filepath.Join(dir, "state"), cache: cache, meta: filepath.Join(dir, "md.json"),
				extra: []string{"--platform", c.platforms}, from: c.warm, to: !c.warm && strings.Contains(c.platforms, ",")}
			res, err := runBuild(ctx, kiln, s, log)
			if err != nil {
				return 1, fmt.Errorf("%s: %w", c.name, err)
			}
			fmt.Fprintf(os.Stderr, "bench: run %d: %s: %s\n", run+1, c.name, fmtDuration(res.wall))
			times[c.name] = append(times[c.name], res.wall)
			if res.md.Summary != nil {
				ran[c.name] = res.md.Summary.Ran
			}
			detachMounts(dir)
		}
	}
	fmt.Fprintf(os.Stdout, "### Multi-platform builds\n\n")
	fmt.Fprintf(os.Stdout, "A FROM --platform=$BUILDPLATFORM stage (one RUN) and a target stage (COPY busybox, two RUNs) per platform; arm64 RUN steps under QEMU user emulation. Median of %d runs, fresh state dir each.\n\n", o.runs)
	var rows [][]string
	for _, c := range platformCases {
		rows = append(rows, []string{c.name, fmtDuration(median(times[c.name])), fmt.Sprint(ran[c.name])})
	}
	fmt.Fprint(os.Stdout, markdownTable([]string{"build", "time", "steps run"}, []bool{false, true, true}, rows))
	return 0, nil
}
