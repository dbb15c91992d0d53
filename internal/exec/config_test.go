package exec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/passwd": "# users\nroot:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n\nbad:x:notanumber:1::/:/bin/sh\n",
		"etc/group":  "root:x:0:\nwheel:x:10:app,other\naudio:x:29:other,app\napp:x:1000:app\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		user       string
		uid, gid   uint32
		groups     []uint32
		wantErrSub string // "" for success
	}{
		// As in BuildKit, the primary group leads the supplementary groups
		// (once), and an explicit group is the only one.
		{user: "", uid: 0, gid: 0, groups: []uint32{0}},
		{user: "root", uid: 0, gid: 0, groups: []uint32{0}},
		{user: "app", uid: 1000, gid: 1000, groups: []uint32{1000, 10, 29}},
		{user: "1000", uid: 1000, gid: 1000, groups: []uint32{1000, 10, 29}},
		{user: "app:wheel", uid: 1000, gid: 10, groups: []uint32{10}},
		{user: "app:29", uid: 1000, gid: 29, groups: []uint32{29}},
		{user: "1000:0", uid: 1000, gid: 0, groups: []uint32{0}},
		{user: "4242", uid: 4242, gid: 0, groups: []uint32{0}},
		{user: "4242:7", uid: 4242, gid: 7, groups: []uint32{7}},
		{user: "4242:audio", uid: 4242, gid: 29, groups: []uint32{29}},
		{user: "ghost", wantErrSub: "ghost"},
		{user: "app:ghosts", wantErrSub: "ghosts"},
		{user: "bad", wantErrSub: "malformed"},
		{user: ":10", wantErrSub: "empty"},
		{user: "app:", wantErrSub: "empty"},
	}
	for _, tc := range tests {
		t.Run("user="+tc.user, func(t *testing.T) {
			uid, gid, groups, err := ResolveUser(root, tc.user)
			if tc.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) {
					t.Fatalf("ResolveUser(%q) error = %v, want one containing %q", tc.user, err, tc.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveUser(%q): %v", tc.user, err)
			}
			if uid != tc.uid || gid != tc.gid {
				t.Errorf("ResolveUser(%q) = %d:%d, want %d:%d", tc.user, uid, gid, tc.uid, tc.gid)
			}
			if diff := cmp.Diff(tc.groups, groups); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveUserNoFiles(t *testing.T) {
	root := t.TempDir()
	if uid, gid, _, err := ResolveUser(root, "123"); err != nil || uid != 123 || gid != 0 {
		t.Errorf("ResolveUser(123) without /etc/passwd = %d:%d, %v; want 123:0", uid, gid, err)
	}
	if _, _, _, err := ResolveUser(root, "app"); err == nil {
		t.Error("ResolveUser(app) without /etc/passwd succeeded, want an error")
	}
}

// TestResolveUserSymlink: an /etc/passwd symlink resolves inside the root,
// never to the host's file.
func TestResolveUserSymlink(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "passwd"), []byte("inner:x:7:7::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/passwd", filepath.Join(root, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	if uid, _, _, err := ResolveUser(root, "inner"); err != nil || uid != 7 {
		t.Errorf("ResolveUser(inner) = %d, %v; want 7", uid, err)
	}
}

func TestConfigFor(t *testing.T) {
	base := Spec{Root: "/r", Args: []string{"true"}, Cwd: "/", Network: NetworkHost, Hostname: "kiln"}
	hasNetNS := func(c *specs.Spec) bool {
		for _, n := range c.Linux.Namespaces {
			if n.Type == specs.NetworkNamespace {
				return true
			}
		}
		return false
	}
	sys := func(c *specs.Spec) string {
		for _, m := range c.Mounts {
			if m.Destination == "/sys" {
				return m.Type
			}
		}
		return ""
	}
	tests := []struct {
		name       string
		network    string
		inUserNS   bool
		resolvConf string
		wantNetNS  bool
		wantSys    string
		wantMounts int
	}{
		{"host", NetworkHost, false, "/etc/resolv.conf", false, "sysfs", 9},
		{"none", NetworkNone, false, "/etc/resolv.conf", true, "sysfs", 9},
		{"host in userns", NetworkHost, true, "", false, "bind", 8},
		{"none in userns", NetworkNone, true, "", true, "sysfs", 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			s.Network = tc.network
			c := configFor(configInput{spec: s, hostsFile: "/b/hosts", resolvConf: tc.resolvConf, nofile: 4096, inUserNS: tc.inUserNS})
			if got := hasNetNS(c); got != tc.wantNetNS {
				t.Errorf("network namespace = %v, want %v", got, tc.wantNetNS)
			}
			if got := sys(c); got != tc.wantSys {
				t.Errorf("/sys mount type = %q, want %q", got, tc.wantSys)
			}
			// Docker's /sys/fs/cgroup, read-only, over whatever /sys holds
			// there (the host's hierarchies, when /sys is a bind).
			cg := -1
			for i, m := range c.Mounts {
				if m.Destination == "/sys/fs/cgroup" {
					cg = i
					if m.Type != "cgroup" || !slices.Contains(m.Options, "ro") {
						t.Errorf("/sys/fs/cgroup mount %+v: want type cgroup, ro", m)
					}
				}
				if m.Destination == "/sys" && cg >= 0 {
					t.Errorf("/sys is mounted after /sys/fs/cgroup, hiding it")
				}
			}
			if cg < 0 {
				t.Errorf("no /sys/fs/cgroup mount")
			}
			if len(c.Mounts) != tc.wantMounts {
				t.Errorf("%d mounts, want %d", len(c.Mounts), tc.wantMounts)
			}
			if got := c.Process.Rlimits; len(got) != 1 || got[0].Hard != 4096 || got[0].Soft != 4096 {
				t.Errorf("rlimits = %+v, want NOFILE 4096", got)
			}
			if c.Process.Terminal || c.Root.Readonly {
				t.Errorf("terminal %v, readonly root %v; want both false", c.Process.Terminal, c.Root.Readonly)
			}
		})
	}
}

func TestWithPath(t *testing.T) {
	tests := []struct {
		env, want []string
	}{
		{nil, []string{"PATH=" + DefaultPath}},
		{[]string{"A=1"}, []string{"A=1", "PATH=" + DefaultPath}},
		{[]string{"PATH=/x", "A=1"}, []string{"PATH=/x", "A=1"}},
		{[]string{"XPATH=/x"}, []string{"XPATH=/x", "PATH=" + DefaultPath}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, withPath(tc.env)); diff != "" {
			t.Errorf("withPath(%q) (-want +got):\n%s", tc.env, diff)
		}
	}
}

// TestMountPointsStayInRoot: mount points behind a symlink that points out
// of the rootfs are created inside the rootfs, and removed from there.
func TestMountPointsStayInRoot(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc"},
		{Destination: "/dev", Type: "tmpfs"},
		{Destination: "/dev/pts", Type: "devpts"},
		{Destination: "/etc/hosts", Type: "bind", Source: hosts},
	}
	mp, err := makeMountPoints(root, mounts)
	if err != nil {
		t.Fatalf("makeMountPoints: %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("created outside the rootfs: %v", ents)
	}
	inside := filepath.Join(root, outside, "hosts")
	if fi, err := os.Stat(inside); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("mount point %s: %v, %v; want a file", inside, fi, err)
	}
	if _, err := os.Stat(filepath.Join(root, "dev/pts")); err == nil {
		t.Error("dev/pts created on the rootfs, want it left to the /dev tmpfs")
	}
	// A mount point the step filled is kept; the others go.
	if err := os.Mkdir(filepath.Join(root, "proc/kept"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mp.remove(); err != nil {
		t.Fatalf("remove: %v", err)
	}
	var got []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		got = append(got, rel)
		return nil
	})
	want := []string{".", "etc", "proc", "proc/kept"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rootfs after remove (-want +got):\n%s", diff)
	}
}

// TestTmpfsSize: RUN --mount=type=tmpfs,size= reaches the runtime's mount
// options; without size the kernel's default applies.
func TestTmpfsSize(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want string
	}{{0, ""}, {1 << 20, "size=1048576"}} {
		s := Spec{Root: "/r", Args: []string{"true"}, Cwd: "/", Network: NetworkHost,
			Mounts: []Mount{{Type: MountTmpfs, Target: "/t", Size: tc.size}}}
		c := configFor(configInput{spec: s, hostsFile: "/b/hosts", nofile: 4096})
		var got string
		for _, m := range c.Mounts {
			if m.Destination != "/t" {
				continue
			}
			for _, o := range m.Options {
				if strings.HasPrefix(o, "size=") {
					got = o
				}
			}
		}
		if got != tc.want {
			t.Errorf("size %d: tmpfs option %q, want %q", tc.size, got, tc.want)
		}
	}
}
