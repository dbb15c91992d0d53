package exec

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// runHelperEnv makes the test binary a process that only calls Run
// (runtime, rootfs and bundle from the env) instead of running the tests,
// for a test to kill with SIGKILL as kiln is killed (TestMain).
const runHelperEnv = "KILN_EXEC_TEST_RUN_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(runHelperEnv) != "" {
		err := Run(context.Background(), Spec{Runtime: os.Getenv(runHelperEnv + "_RT"), Root: os.Getenv(runHelperEnv + "_ROOT"),
			BundleDir: os.Getenv(runHelperEnv + "_BUNDLE"), Args: []string{"/bin/sleep", "300"}, Stdout: io.Discard, Stderr: io.Discard})
		fmt.Fprintf(os.Stderr, "Run returned before its kill: %v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// TestReapRemovesCgroups kills a process in Run the moment the runtime has
// made the first of the container's cgroup directories, as kiln killed
// with -9 mid-RUN, and then reaps the bundle: no directory of the
// container may remain. It tries until one kill hits the case that used to
// leak, where the runtime died with the directories made but before it
// saved the container's state, so that "delete --force" finds no container.
func TestReapRemovesCgroups(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		path, err := osexec.LookPath(rt)
		if err != nil {
			t.Fatal(err)
		}
		const attempts = 30
		for i := 0; i < attempts; i++ {
			bundle := t.TempDir()
			cmd := osexec.Command(os.Args[0])
			// No pipes: a container that outlives the helper would hold
			// them, and Wait would wait for it.
			cmd.Env = append(os.Environ(), runHelperEnv+"=1", runHelperEnv+"_RT="+rt,
				runHelperEnv+"_ROOT="+newRoot(t), runHelperEnv+"_BUNDLE="+bundle)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			rec, made := killAtFirstCgroup(t, cmd, bundle)
			t.Cleanup(func() { rmdirAll(rec.Cgroups) })
			// "delete --force" of an ID that "state" does not know deletes nothing.
			leaked := len(made) > 0 && (ociRuntime{path: path}).command("state", rec.ID) != nil
			if err := Reap(bundle); err != nil {
				t.Fatalf("Reap: %v", err)
			}
			if left := existing(rec.Cgroups); len(left) != 0 {
				t.Fatalf("attempt %d: cgroup dirs left after Reap (the runtime had %s): %v",
					i, map[bool]string{true: "no container", false: "a container"}[leaked], left)
			}
			if leaked {
				t.Logf("attempt %d: the runtime died with %d cgroup dirs made and no container; Reap removed them", i, len(made))
				return
			}
		}
		t.Fatalf("in %d attempts, no kill left %s's cgroup dirs without a container", attempts, rt)
	})
}

// killAtFirstCgroup waits for the container record in bundle, then kills
// cmd as soon as any of the record's cgroup dirs exists, and returns the
// record and the dirs that exist after the kill.
func killAtFirstCgroup(t *testing.T, cmd *osexec.Cmd, bundle string) (containerRecord, []string) {
	t.Helper()
	defer cmd.Wait()
	defer cmd.Process.Kill()
	var rec containerRecord
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(bundle, recordFile))
		if err == nil && json.Unmarshal(b, &rec) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no container record in the bundle: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	if len(rec.Cgroups) == 0 {
		t.Fatal("the record names no cgroup dirs")
	}
	for len(existing(rec.Cgroups)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("none of the container's cgroup dirs appeared: %v", rec.Cgroups)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	return rec, existing(rec.Cgroups)
}

// existing returns those of dirs that exist.
func existing(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		if _, err := os.Lstat(d); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// rmdirAll removes those of dirs that exist, deepest first, with rmdir: a
// test's clean-up after a failure.
func rmdirAll(dirs []string) {
	dirs = slices.Clone(dirs)
	slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
	for _, d := range dirs {
		_ = syscall.Rmdir(d)
	}
}

func TestCgroupDirsFrom(t *testing.T) {
	const id = "kiln-0123456789abcdef0123"
	tests := []struct {
		name                  string
		mountinfo, procCgroup string
		want                  []string
	}{{
		name: "v1 hybrid, runc's own memory cgroup below the root",
		mountinfo: `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /mnt/elsewhere rw - cgroup cgroup rw,pids
`,
		procCgroup: `9:name=systemd:/
8:pids:/x
4:memory:/api/s1
2:cpu,cpuacct:/
0::/
`,
		want: []string{
			"/sys/fs/cgroup/cpu,cpuacct/" + id,
			"/sys/fs/cgroup/memory/" + id,
			"/sys/fs/cgroup/systemd/" + id,
			"/sys/fs/cgroup/unified/" + id,
			"/sys/fs/cgroup/memory/api/s1/" + id,
			"/sys/fs/cgroup/memory/api/" + id,
		},
	}, {
		name:       "v2 only, in a session scope",
		mountinfo:  "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
		procCgroup: "0::/user.slice/session-2.scope\n",
		want: []string{
			"/sys/fs/cgroup/" + id,
			"/sys/fs/cgroup/user.slice/session-2.scope/" + id,
			"/sys/fs/cgroup/user.slice/" + id,
		},
	}, {
		name: "a container's bind of its own cgroup as the mount root",
		mountinfo: `29 23 0:26 /docker/c1 /sys/fs/cgroup ro - cgroup2 cgroup2 rw
`,
		procCgroup: "0::/docker/c1\n",
		want:       []string{"/sys/fs/cgroup/" + id},
	}, {
		name:       "a cgroup outside the mount root, an escaped mount point",
		mountinfo:  `29 23 0:26 /docker/c1 /sys/fs/cgroup/a\040b ro - cgroup2 cgroup2 rw` + "\n",
		procCgroup: "0::/docker/c10\n",
		want:       []string{"/sys/fs/cgroup/a b/" + id},
	}, {
		name:       "no cgroup file systems",
		mountinfo:  "22 1 0:21 / /proc rw - proc proc rw\n",
		procCgroup: "0::/\n",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := cgroupDirsFrom(id, strings.NewReader(tc.mountinfo), strings.NewReader(tc.procCgroup))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("cgroupDirsFrom (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRemoveCgroupsKillsLeft: a process left in a container's cgroup
// directory (a runtime's init, waiting for a start its killed runtime
// never sent) is killed, and the directory goes: a busy cgroup must not
// keep the killed build's session, and its mounts, from being swept.
func TestRemoveCgroupsKillsLeft(t *testing.T) {
	imagetest.Require(t, "root")
	id, err := newID()
	if err != nil {
		t.Fatal(err)
	}
	dirs := cgroupDirs(id)
	if len(dirs) == 0 {
		t.Fatal("no cgroup hierarchy under " + cgroupRoot)
	}
	d := dirs[0] // at a hierarchy's root
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rmdirAll([]string{d}) })
	sleep := osexec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(sleep.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := removeCgroups(id, dirs); err != nil {
		t.Errorf("removeCgroups of a cgroup with a process left in it: %v", err)
	}
	if left := existing(dirs); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
	if err := sleep.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("the process left in the cgroup: %v, want it killed", err)
	}
	if err := removeCgroups(id, []string{"/sys/fs/cgroup/pids/kiln-other"}); err == nil {
		t.Error("removeCgroups of a directory named otherwise: no error")
	}
}
