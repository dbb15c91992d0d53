package exec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The kernel's view of Debian's qemu-aarch64 handler, as
// /proc/sys/fs/binfmt_misc/qemu-aarch64 shows it.
const aarch64Handler = `enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: %s
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
`

// fakeBinfmt is a directory laid out as binfmt_misc with the given
// handler files.
func fakeBinfmt(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["status"] = "enabled\n"
	files["register"] = ""
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckEmulation(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		arch    string
		wantErr string // "" for none
	}{
		{"F flag", map[string]string{"qemu-aarch64": strings.Replace(aarch64Handler, "%s", "POF", 1)}, "arm64", ""},
		{"no F flag", map[string]string{"qemu-aarch64": strings.Replace(aarch64Handler, "%s", "PO", 1)}, "arm64",
			"the binfmt_misc handler qemu-aarch64 in DIR lacks the F (fix binary) flag"},
		{"disabled handler", map[string]string{"qemu-aarch64": strings.Replace(strings.Replace(aarch64Handler, "%s", "POF", 1), "enabled", "disabled", 1)}, "arm64",
			"no binfmt_misc handler with the F (fix binary) flag for arm64 in DIR (Debian: apt-get install qemu-user-static"},
		{"other arch only", map[string]string{"qemu-aarch64": strings.Replace(aarch64Handler, "%s", "POF", 1)}, "s390x",
			"no binfmt_misc handler with the F (fix binary) flag for s390x in DIR"},
		{"empty dir", map[string]string{}, "arm64", "RUN for linux/arm64 needs QEMU user emulation: no binfmt_misc handler"},
		{"unknown arch", map[string]string{}, "sparc", "kiln cannot emulate this architecture"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fakeBinfmt(t, tt.files)
			err := CheckEmulation(dir, tt.arch)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			want := strings.ReplaceAll(tt.wantErr, "DIR", dir)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want an error containing %q", err, want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error has more than one line: %q", err)
			}
		})
	}
	if err := CheckEmulation(filepath.Join(t.TempDir(), "missing"), "arm64"); err == nil || !strings.Contains(err.Error(), "binfmt_misc is not mounted at") {
		t.Errorf("missing dir: got %v", err)
	}
}

func TestHandlerTakes(t *testing.T) {
	dir := fakeBinfmt(t, map[string]string{"qemu-aarch64": strings.Replace(aarch64Handler, "%s", "POF", 1)})
	hs, err := Handlers(dir)
	if err != nil || len(hs) != 1 {
		t.Fatalf("Handlers = %v, %v", hs, err)
	}
	var takes []string
	for _, a := range Archs() {
		if hs[0].Takes(a) {
			takes = append(takes, a)
		}
	}
	if diff := cmp.Diff([]string{"arm64"}, takes); diff != "" {
		t.Errorf("qemu-aarch64 takes (-want +got):\n%s", diff)
	}
}

// TestInstall registers the handlers of Debian's binfmt.d files (copied
// into testdata) in a fake binfmt_misc: the F flag is there, a handler
// already registered is left alone, a native architecture is skipped.
func TestInstall(t *testing.T) {
	dir := fakeBinfmt(t, map[string]string{"qemu-arm": "enabled\nflags: POF\n"})
	conf := t.TempDir()
	for _, n := range []string{"qemu-aarch64.conf", "qemu-arm.conf"} {
		b, err := os.ReadFile(filepath.Join("testdata", "binfmt", n))
		if err != nil {
			t.Fatal(err)
		}
		// Point the interpreter at a file that exists here.
		line := strings.Replace(string(b), "/usr/libexec/qemu-binfmt/", filepath.Join(conf, "bin")+"/", 1)
		line = strings.Replace(line, ":OPF", ":OP", 1) // Install adds the F flag
		if err := os.WriteFile(filepath.Join(conf, n), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(conf, "bin"), 0o755)
	for _, n := range []string{"aarch64-binfmt-P", "arm-binfmt-P"} {
		os.WriteFile(filepath.Join(conf, "bin", n), nil, 0o755)
	}
	regs, err := Install(dir, conf, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range regs {
		got[r.Name] = r.Already
	}
	if diff := cmp.Diff(map[string]bool{"qemu-aarch64": false, "qemu-arm": true}, got); diff != "" {
		t.Errorf("registrations (name: already) (-want +got):\n%s", diff)
	}
	written, _ := os.ReadFile(filepath.Join(dir, "register"))
	line := string(written)
	if !strings.HasPrefix(line, ":qemu-aarch64:M::\\x7f\\x45\\x4c\\x46") || !strings.Contains(line[strings.LastIndex(line, ":"):], "F") {
		t.Errorf("register got %q, want the qemu-aarch64 line with the F flag", line)
	}
	if regs, err := Install(dir, conf, "arm64"); err != nil || len(regs) != 1 || regs[0].Name != "qemu-arm" {
		t.Errorf("on arm64: %v, %v; want only qemu-arm (arm64 is native)", regs, err)
	}
}
