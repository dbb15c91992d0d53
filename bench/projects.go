package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// busyboxPath is the one binary every bench project is made of: the
// Debian busybox-static, so nothing is pulled from a registry.
const busyboxPath = "/bin/busybox"

// A project is a build context the bench writes into a temp dir: busybox
// plus the files below (the Dockerfile among them).
type project struct {
	name string
	// files maps a context-relative path to its contents.
	files map[string]string
	// sources are the files the cache-size series edits, one per rebuild,
	// round robin. Each must feed a step that does real work, so that an
	// edit replaces big layers and shows whether the cache dir keeps the
	// old ones.
	sources []string
}

// projects returns the bench projects in the order they are measured.
func projects() []project {
	return []project{smallProject(), multiStageProject()}
}

// smallProject is one stage: busybox, a few source files, and a RUN that
// writes about 20 MB (8 MB random, 12 MB of numbers and their gzip) and
// hashes it, about a second of CPU.
func smallProject() project {
	return project{
		name: "small",
		files: map[string]string{
			"Dockerfile": `# kiln bench "small": one stage from scratch, busybox only.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV LC_ALL=C
WORKDIR /app
COPY src/ ./src/
COPY gen.sh ./
RUN sh gen.sh
RUN wc -c data/* > data/SIZES && tail -n 3 SUMS
CMD ["cat", "/app/SUMS"]
`,
			"gen.sh": `# The "compile" of the small project: ~20 MB of files and about a
# second of CPU, depending on every source file.
set -eu
mkdir -p data
cat src/* > data/inputs.txt
dd if=/dev/urandom of=data/random.bin bs=1M count=8 2>/dev/null
seq 1 1500000 > data/numbers.txt
gzip -c data/numbers.txt > data/numbers.txt.gz
i=0
while [ "$i" -lt 6 ]; do
  sha256sum data/random.bin data/numbers.txt data/inputs.txt
  i=$((i + 1))
done > SUMS
`,
			"src/main.c":  "int main(void) { return greet(); }\n",
			"src/greet.c": "int greet(void) { return puts(\"hello from kiln bench\") < 0; }\n",
			"src/greet.h": "int greet(void);\n",
		},
		sources: []string{"src/main.c", "src/greet.c", "src/greet.h"},
	}
}

// multiStageProject is three stages: deps makes ~30 MB (12 MB random,
// 15 MB of numbers and their gzip), build copies them and does the work
// that depends on the sources, and the final stage holds only the small
// artifact.
func multiStageProject() project {
	return project{
		name: "multi-stage",
		files: map[string]string{
			"Dockerfile": `# kiln bench "multi-stage": deps -> build -> final, busybox only.
FROM scratch AS deps
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
WORKDIR /deps
COPY deps.lock ./
RUN mkdir -p lib && dd if=/dev/urandom of=lib/vendor.bin bs=1M count=12 2>/dev/null
RUN seq 1 2000000 > lib/index.txt && gzip -c lib/index.txt > lib/index.txt.gz
RUN sha256sum lib/* deps.lock > lib/SUMS

FROM scratch AS build
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY --from=deps /deps/lib /deps/lib
WORKDIR /src
COPY src/ ./
RUN mkdir -p out && for f in *.c; do { cat "$f"; sha256sum /deps/lib/vendor.bin; } > "out/${f%.c}.o"; done
RUN dd if=/dev/urandom of=out/objects.bin bs=1M count=4 2>/dev/null && cat *.c /deps/lib/index.txt | gzip -c > out/symbols.gz
RUN i=0; while [ "$i" -lt 4 ]; do sha256sum /deps/lib/* out/*; i=$((i + 1)); done > out/CHECK
RUN mkdir -p /dist && tar -czf /dist/app.tar.gz out/*.o out/CHECK && sha256sum /dist/app.tar.gz > /dist/app.sha256

FROM scratch
COPY --from=build /dist/ /dist/
`,
			"deps.lock":  "libfoo 1.2.3 sha256:0000\nlibbar 4.5.6 sha256:1111\n",
			"src/main.c": "int main(void) { return run(); }\n",
			"src/run.c":  "int run(void) { return io_write(\"bench\"); }\n",
			"src/io.c":   "int io_write(const char *s) { return puts(s) < 0; }\n",
		},
		sources: []string{"src/main.c", "src/run.c", "src/io.c"},
	}
}

// writeContext writes p's build context into dir: busybox and p's files.
func writeContext(dir string, p project) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing context of %s: %w", p.name, err)
	}
	if err := copyFile(busyboxPath, filepath.Join(dir, "busybox"), 0o755); err != nil {
		return err
	}
	for name, body := range p.files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("writing context of %s: %w", p.name, err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			return fmt.Errorf("writing context of %s: %w", p.name, err)
		}
	}
	return nil
}

// editSource makes the n-th edit of the cache-size series (n from 1): it
// appends a line to one of p's sources, so the file differs from every
// earlier state of the context.
func editSource(dir string, p project, n int) (string, error) {
	name := p.sources[(n-1)%len(p.sources)]
	f, err := os.OpenFile(filepath.Join(dir, filepath.FromSlash(name)), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return "", fmt.Errorf("editing %s: %w", name, err)
	}
	_, err = fmt.Fprintf(f, "/* bench edit %d */\n", n)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("editing %s: %w", name, err)
	}
	return name, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return nil
}
