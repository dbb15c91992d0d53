package exec

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// TestFiltersReuseCrunProgram: with Filters, every crun step carries the
// seccomp program crun compiled once from the profile (the annotation)
// beside the profile itself, runs under one seccomp filter, and is denied
// what the profile denies (unshare, which a step without a filter may call
// for a user namespace); the scratch container is gone. Prepare compiles
// the program steps then use, and a runc step never carries it.
func TestFiltersReuseCrunProgram(t *testing.T) {
	imagetest.Require(t, "root", "busybox", "crun", "runc")
	root := newRoot(t)
	if err := os.Symlink("busybox", filepath.Join(root, "bin/unshare")); err != nil {
		t.Fatal(err)
	}
	for _, prepare := range []bool{false, true} {
		t.Run(fmt.Sprintf("prepare=%v", prepare), func(t *testing.T) {
			scratch := t.TempDir()
			var made atomic.Int32
			f := &Filters{TempDir: func() (string, error) {
				made.Add(1)
				return os.MkdirTemp(scratch, "f-")
			}}
			if prepare {
				f.Prepare("crun")
				f.Close()
				if made.Load() != 1 {
					t.Fatalf("Prepare made %d scratch containers, want 1", made.Load())
				}
			}
			step := func(rt string) (string, *specs.Spec) {
				t.Helper()
				bundle := t.TempDir()
				out, errOut, err := run(t, Spec{Runtime: rt, Root: root, BundleDir: bundle, Filters: f, Network: NetworkNone,
					Args: []string{"/bin/sh", "-c", "grep ^Seccomp /proc/self/status; unshare -U true 2>&1 || echo denied"}})
				if err != nil {
					t.Fatalf("%s step: %v: %s", rt, err, errOut)
				}
				b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
				if err != nil {
					t.Fatal(err)
				}
				var cfg specs.Spec
				if err := json.Unmarshal(b, &cfg); err != nil {
					t.Fatal(err)
				}
				return out, &cfg
			}
			for i := range 2 {
				out, cfg := step("crun")
				prog, ok := cfg.Annotations[seccompBPFAnnotation]
				if !ok {
					t.Fatalf("crun step %d carries no program", i+1)
				}
				bpf, err := base64.StdEncoding.DecodeString(prog)
				if err != nil || len(bpf) == 0 || len(bpf)%8 != 0 {
					t.Fatalf("the program is not BPF: %d bytes, %v", len(bpf), err)
				}
				if cfg.Linux.Seccomp == nil || len(cfg.Linux.Seccomp.Syscalls) == 0 {
					t.Errorf("the step with the program lost its profile: %+v", cfg.Linux.Seccomp)
				}
				if !strings.Contains(out, "Seccomp:\t2") || !strings.Contains(out, "Seccomp_filters:\t1") || !strings.Contains(out, "Operation not permitted\ndenied") {
					t.Errorf("the step with the program printed:\n%s\nwant seccomp mode 2, one filter, and unshare denied", out)
				}
			}
			if made.Load() != 1 {
				t.Errorf("%d scratch containers made, want 1 for one profile", made.Load())
			}
			ents, err := os.ReadDir(scratch)
			if err != nil || len(ents) != 0 {
				t.Errorf("scratch bundles left: %v %v", ents, err)
			}
			if _, cfg := step("runc"); cfg.Annotations[seccompBPFAnnotation] != "" {
				t.Errorf("a runc step carries the crun program")
			}
		})
	}
}

// TestFilterScratchKeptWhenDeleteFails: when the runtime cannot delete the
// scratch container, its bundle directory and container record stay, so
// that the state dir's sweep (Reap) finds the container and deletes it;
// no program is used. The runtime here is a stand-in named crun whose
// create writes a program where crun would and whose delete fails.
func TestFilterScratchKeptWhenDeleteFails(t *testing.T) {
	imagetest.Require(t, "root")
	bin := t.TempDir()
	script := "#!/bin/sh\nfor a; do last=$a; done\ncase \" $* \" in\n" +
		"*\" create \"*) mkdir -p " + crunStateRoot + "/$last && printf 12345678 > " + crunStateRoot + "/$last/seccomp.bpf; exit 0;;\n" +
		"*\" delete \"*) echo 'delete refused' >&2; exit 1;;\nesac\nexit 1\n"
	rt := filepath.Join(bin, "crun")
	if err := os.WriteFile(rt, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var dir string
	f := &Filters{TempDir: func() (string, error) {
		var err error
		dir, err = os.MkdirTemp(t.TempDir(), "f-")
		return dir, err
	}}
	bpf, err := f.compile(rt, &specs.LinuxSeccomp{DefaultAction: specs.ActErrno})
	if err == nil {
		t.Fatalf("compile with a failing delete returned a program (%d bytes) and no error", len(bpf))
	}
	b, rerr := os.ReadFile(filepath.Join(dir, recordFile))
	if rerr != nil {
		t.Fatalf("the scratch container's record is gone after its delete failed: %v", rerr)
	}
	var rec containerRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.ID == "" {
		t.Fatalf("record %q: %v", b, err)
	}
	os.RemoveAll(filepath.Join(crunStateRoot, rec.ID))
}
