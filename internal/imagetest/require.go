package imagetest

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// E2EEnv is the environment variable that turns a missing part from a skip
// into a failure. .ci/run sets it; so does anyone who wants to know that
// every test ran.
const E2EEnv = "KILN_E2E"

// part is one thing outside the test process that some tests need.
type part struct {
	// what the part is, for messages.
	what string
	// install says how to get the part, for messages.
	install string
	// deb is the Debian package that provides the part, which `.ci/deps
	// test` must install ("" for a property of the host).
	deb string
	// check reports why the part is missing, or nil when it is present.
	check func() error
}

// parts is the table Require looks names up in. Adding a part is one entry
// here, plus its Debian package in .ci/deps (a test checks the two agree).
//
//	name             detected by                                   Debian package
//	root             effective uid 0                               -
//	overlayfs        mounting overlayfs in TMPDIR (two lower       -
//	                 dirs, a whiteout device, an opaque dir)
//	netif            /proc/net/dev lists an interface besides lo   -
//	user-xattr       setting a user.* xattr on a file in TMPDIR    -
//	busybox          /bin/busybox exists and is statically linked  busybox-static
//	runc, crun       the binary on PATH                            runc, crun
//	docker-registry  the binary on PATH                            docker-registry
//	htpasswd         the binary on PATH                            apache2-utils
//	bzip2, xz        the binary on PATH                            bzip2, xz-utils
//	node             the binary on PATH                            nodejs
//	slirp4netns      the binary on PATH                            slirp4netns
//	iproute2         the ip binary on PATH                         iproute2
//	sudo             the binary on PATH                            sudo
//	useradd          the binary on PATH                            passwd
var parts = map[string]part{
	"root": {
		what:    "uid 0",
		install: "run the tests as root (sudo -E make test)",
		check:   checkRoot,
	},
	"overlayfs": {
		what:    "overlayfs mounted by root in TMPDIR, with whiteouts and opaque dirs",
		install: "run as root on a kernel with overlayfs (modprobe overlay), with TMPDIR on a filesystem overlayfs accepts as upper dir (ext4, xfs, btrfs, tmpfs; not overlayfs itself)",
		check:   sync.OnceValue(checkOverlay),
	},
	"netif": {
		what:    "a network interface besides lo",
		install: "run the tests on a host (or in a network namespace) with a network interface besides lo",
		check:   checkNetif,
	},
	"user-xattr": {
		what:    "user xattrs in TMPDIR",
		install: "point TMPDIR at a filesystem with user xattrs (ext4, xfs, btrfs; tmpfs since Linux 6.6)",
		check:   sync.OnceValue(checkUserXattr),
	},
	"busybox": {
		what:    "a static " + BusyboxPath,
		install: "apt-get install busybox-static",
		deb:     "busybox-static",
		check:   sync.OnceValue(checkBusybox),
	},
	"busybox-arm64": {
		what:    "Debian's arm64 busybox-static unpacked at " + BusyboxArm64Path,
		install: ".ci/deps test (dpkg --add-architecture arm64; apt-get download busybox-static:arm64; dpkg-deb -x it into " + filepath.Dir(filepath.Dir(BusyboxArm64Path)) + ")",
		check:   sync.OnceValue(checkBusyboxArm64),
	},
	"qemu-arm64": {
		what:    "a binfmt_misc handler with the F flag for arm64 (QEMU user emulation)",
		install: "apt-get install qemu-user-static, with binfmt_misc mounted (.ci/deps test mounts it and registers the handler if none is)",
		deb:     "qemu-user-static",
		check:   checkQemuArm64,
	},
	"runc":            binary("runc", "runc"),
	"crun":            binary("crun", "crun"),
	"docker-registry": binary("docker-registry", "docker-registry"),
	"htpasswd":        binary("htpasswd", "apache2-utils"),
	"bzip2":           binary("bzip2", "bzip2"),
	"xz":              binary("xz", "xz-utils"),
	"node":            binary("node", "nodejs"),
	"slirp4netns":     binary("slirp4netns", "slirp4netns"),
	"iproute2":        binary("ip", "iproute2"),
	"npm":             binary("npm", "npm"),
	"git":             binary("git", "git"),
	"docker":          binary("docker", "docker.io"),
	"dockerd":         binary("dockerd", "docker.io"),
	"setpriv":         binary("setpriv", "util-linux"),
	"sudo":            binary("sudo", "sudo"),
	"useradd":         binary("useradd", "passwd"),
	"act":             goTool("act", "github.com/nektos/act@v0.2.89"),
	"go":              goTool("go", "the Go toolchain"),
}

// goTool is the part "an executable named name on PATH" that .ci/deps gets
// from the Go module proxy (or the toolchain itself), not from Debian.
func goTool(name, from string) part {
	p := binary(name, "")
	p.install = "go install " + from
	return p
}

// binary is the part "an executable named name on PATH", from Debian
// package deb.
func binary(name, deb string) part {
	return part{
		what:    "the " + name + " binary on PATH",
		install: "apt-get install " + deb,
		deb:     deb,
		check: func() error {
			_, err := exec.LookPath(name)
			return err
		},
	}
}

// Require makes sure the host has every named part before the test goes
// on. When one is missing it skips t, or, when KILN_E2E is set (as CI sets
// it), fails t, naming each missing part and how to install it. A name that
// is not in the table fails t whatever KILN_E2E says.
//
// The parts are root, overlayfs, netif (a network interface besides lo),
// user-xattr, busybox (a static /bin/busybox), and the binaries runc, crun,
// docker-registry, htpasswd, bzip2, xz, node, slirp4netns and ip
// (iproute2); `.ci/deps test` installs
// every Debian package among them.
func Require(t testing.TB, names ...string) {
	t.Helper()
	require(t, os.Getenv(E2EEnv) != "", parts, names)
}

// require is Require with the policy and the table passed in, for tests.
func require(t testing.TB, e2e bool, table map[string]part, names []string) {
	t.Helper()
	var missing []string
	for _, name := range names {
		p, ok := table[name]
		if !ok {
			t.Fatalf("imagetest.Require: unknown part %q", name)
			return
		}
		if err := p.check(); err != nil {
			missing = append(missing, fmt.Sprintf("missing part %q (%s): %v; to get it: %s", name, p.what, err, p.install))
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := strings.Join(missing, "\n")
	if e2e {
		t.Fatalf("%s\n(%s is set, so a missing part fails the test)", msg, E2EEnv)
		return
	}
	t.Skipf("%s\n(set %s=1 to make this a failure)", msg, E2EEnv)
}

func checkRoot() error {
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("the tests run as uid %d", uid)
	}
	return nil
}

// checkNetif reads /proc/net/dev, whose lines after the two header lines
// start with "NAME:".
func checkNetif() error {
	b, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for _, l := range lines[min(2, len(lines)):] {
		if name, _, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(name) != "lo" {
			return nil
		}
	}
	return errors.New("/proc/net/dev lists only lo")
}

func checkUserXattr() error {
	f, err := os.CreateTemp("", "imagetest-xattr")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	f.Close()
	return unix.Lsetxattr(f.Name(), "user.imagetest", []byte("x"), 0)
}

// checkBusybox requires a binary without an ELF interpreter: a dynamic one
// would not run inside the images BusyboxLayer makes.
func checkBusybox() error {
	f, err := elf.Open(BusyboxPath)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", BusyboxPath)
		}
	}
	return nil
}

// checkBusyboxArm64 requires a static arm64 ELF at BusyboxArm64Path.
func checkBusyboxArm64() error {
	f, err := elf.Open(BusyboxArm64Path)
	if err != nil {
		return err
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		return fmt.Errorf("%s is for %v, not arm64", BusyboxArm64Path, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", BusyboxArm64Path)
		}
	}
	return nil
}

// checkQemuArm64 looks in /proc/sys/fs/binfmt_misc for an enabled handler
// with the F flag whose magic is the ELF header of an arm64 executable.
// (Package exec has the full check; its tests import imagetest, so
// imagetest cannot import it.)
func checkQemuArm64() error {
	const dir = "/proc/sys/fs/binfmt_misc"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(string(b), "enabled") {
			continue
		}
		var flags, magic string
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "flags: "); ok {
				flags = v
			}
			if v, ok := strings.CutPrefix(l, "magic "); ok {
				magic = v
			}
		}
		// e_machine is bytes 18-19 of the header: b7 00 is EM_AARCH64.
		if strings.HasPrefix(magic, "7f454c4602") && len(magic) >= 40 && magic[36:40] == "b700" && strings.Contains(flags, "F") {
			return nil
		}
	}
	return fmt.Errorf("no enabled binfmt_misc handler with the F flag for arm64 in %s", dir)
}

// checkOverlay mounts overlayfs the way kiln's snapshotter needs it: two
// lower dirs, where the upper one hides a file of the lower one with a
// whiteout device and a directory with trusted.overlay.opaque, and checks
// the merged view. It is independent of package snapshot on purpose: the
// snapshot tests use it to decide whether snapshot's own probe must
// succeed.
func checkOverlay() error {
	if err := checkRoot(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "imagetest-overlay")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p := func(elem ...string) string { return filepath.Join(append([]string{dir}, elem...)...) }
	for _, d := range []string{"low", "high", "upper", "work", "merged", "low/opaque", "high/opaque"} {
		if err := os.Mkdir(p(d), 0o755); err != nil {
			return err
		}
	}
	for _, f := range []string{"low/gone", "low/opaque/hidden", "low/kept"} {
		if err := os.WriteFile(p(f), []byte(f), 0o644); err != nil {
			return err
		}
	}
	if err := unix.Mknod(p("high", "gone"), unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("making a whiteout device: %w", err)
	}
	if err := unix.Lsetxattr(p("high", "opaque"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		return fmt.Errorf("setting trusted.overlay.opaque: %w", err)
	}
	opts := fmt.Sprintf("lowerdir=%s:%s,upperdir=%s,workdir=%s", p("high"), p("low"), p("upper"), p("work"))
	if err := unix.Mount("overlay", p("merged"), "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting overlayfs in %s: %w", dir, err)
	}
	defer unix.Unmount(p("merged"), unix.MNT_DETACH)
	if _, err := os.Stat(p("merged", "kept")); err != nil {
		return fmt.Errorf("the merged view lacks a lower file: %w", err)
	}
	for _, hidden := range []string{"gone", "opaque/hidden"} {
		if _, err := os.Lstat(p("merged", hidden)); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("the merged view shows %s, which the upper lower dir hides (%v)", hidden, err)
		}
	}
	return nil
}
