package exec

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// sandboxApplets are the busybox applets the sandbox tests need beyond
// newRoot's.
var sandboxApplets = []string{"unshare", "nc", "readlink", "tail", "mkdir"}

// fetchSh defines the shell function "fetch ADDR PORT", which prints the
// body of an HTTP/1.0 GET of / (busybox's nc: its static wget crashes in
// a rootfs without glibc's NSS libraries) and fails if it cannot connect.
const fetchSh = `fetch() { printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 "$1" "$2" > /tmp/resp || return 1; tail -n 1 /tmp/resp; }
`

// sandboxRoot is newRoot with sandboxApplets linked too.
func sandboxRoot(t *testing.T) string {
	t.Helper()
	root := newRoot(t)
	for _, a := range sandboxApplets {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// newTestNetNS returns a NetNS closed when the test ends.
func newTestNetNS(t *testing.T) *NetNS {
	t.Helper()
	imagetest.Require(t, "root", "slirp4netns")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := NewNetNS(ctx, NetNSOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("NewNetNS: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("closing NetNS: %v", err)
		}
	})
	return n
}

// TestRunSeccomp: a step runs under Docker's default seccomp profile, in
// filter mode, and so cannot create a user namespace (which would give it
// every capability inside it), whatever its network.
func TestRunSeccomp(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		for _, network := range []string{NetworkNone, NetworkHost} {
			t.Run("network="+network, func(t *testing.T) {
				script := `grep '^Seccomp:' /proc/self/status
if unshare -U true 2>/dev/null; then echo unshare-allowed; else echo unshare-denied; fi
if unshare -n true 2>/dev/null; then echo unshare-net-allowed; else echo unshare-net-denied; fi`
				out, errOut, err := run(t, Spec{Runtime: rt, Root: sandboxRoot(t), Network: network,
					Args: []string{"/bin/sh", "-c", script}})
				if err != nil {
					t.Fatalf("Run: %v; stderr: %s", err, errOut)
				}
				if want := "Seccomp:\t2\nunshare-denied\nunshare-net-denied\n"; out != want {
					t.Errorf("stdout = %q, want %q", out, want)
				}
			})
		}
	})
}

// TestRunCgroupNamespace: where the kernel has cgroup namespaces, a step
// has a private one: its own cgroup is the root of every hierarchy it
// sees, and its namespace is not kiln's.
func TestRunCgroupNamespace(t *testing.T) {
	host, err := os.Readlink("/proc/self/ns/cgroup")
	if err != nil {
		t.Skipf("no cgroup namespaces here: %v", err)
	}
	forRuntimes(t, func(t *testing.T, rt string) {
		out, errOut, err := run(t, Spec{Runtime: rt, Root: sandboxRoot(t), Network: NetworkNone,
			Args: []string{"/bin/sh", "-c", "readlink /proc/self/ns/cgroup; cat /proc/self/cgroup"}})
		if err != nil {
			t.Fatalf("Run: %v; stderr: %s", err, errOut)
		}
		ns, cgroups, _ := strings.Cut(out, "\n")
		if ns == host {
			t.Errorf("the step shares kiln's cgroup namespace %s", ns)
		}
		lines := strings.Fields(cgroups)
		if len(lines) == 0 {
			t.Fatalf("empty /proc/self/cgroup")
		}
		for _, l := range lines {
			if !strings.HasSuffix(l, ":/") {
				t.Errorf("/proc/self/cgroup line %q: want the namespace root /", l)
			}
		}
	})
}

// TestRunCgroupReadOnly: a step sees its cgroups at /sys/fs/cgroup, as in
// Docker's default, and every cgroup filesystem there is read-only: it
// can neither move a process nor make a cgroup, whatever its network.
func TestRunCgroupReadOnly(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		n := newTestNetNS(t)
		for _, network := range []string{"", NetworkNone, NetworkHost} {
			t.Run("network="+network, func(t *testing.T) {
				out, errOut, err := run(t, Spec{Runtime: rt, Root: sandboxRoot(t), Network: network, NetNS: n,
					Args: []string{"/bin/sh", "-c", imagetest.CgroupProbe}})
				if err != nil {
					t.Fatalf("Run: %v; stderr: %s", err, errOut)
				}
				lines := strings.Split(strings.TrimSpace(out), "\n")
				last := lines[len(lines)-1]
				if last == "cgroupfs 0" || !strings.HasPrefix(last, "cgroupfs ") {
					t.Errorf("no cgroup filesystem at /sys/fs/cgroup: %q", out)
				}
				if len(lines) > 1 {
					t.Errorf("/sys/fs/cgroup is writable in a step:\n%s", out)
				}
				t.Logf("%s", last)
			})
		}
	})
}

// loopbackServer serves body on 127.0.0.1 of the host and counts the
// requests it gets.
func loopbackServer(t *testing.T, body string) (port int, hits *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hits = new(atomic.Int32)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port, hits
}

// TestRunHostLoopbackUnreachable: a server on the host's 127.0.0.1 is out
// of reach of a default step, both as 127.0.0.1 (the step's own loopback)
// and through slirp4netns's gateway 10.0.2.2, which slirp4netns would map
// to the host's loopback without --disable-host-loopback. With
// NetworkHost, the explicit choice, it is reachable: the probe works.
func TestRunHostLoopbackUnreachable(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		n := newTestNetNS(t)
		port, hits := loopbackServer(t, "host-loopback-reached")
		probe := func(addrs ...string) string {
			return fetchSh + fmt.Sprintf(`for a in %s; do
  if fetch $a %d; then echo " $a"; else echo "unreachable $a"; fi
done`, strings.Join(addrs, " "), port)
		}
		// The host network has no slirp4netns gateway: 10.0.2.2 is probed
		// only in the build's namespace, where it cannot leave the machine.
		tests := []struct {
			network string
			script  string
			want    string
			hits    int32
		}{
			{"", probe("127.0.0.1", slirpGateway), "unreachable 127.0.0.1\nunreachable " + slirpGateway + "\n", 0},
			{NetworkHost, probe("127.0.0.1"), "host-loopback-reached 127.0.0.1\n", 1},
		}
		for _, tc := range tests {
			t.Run("network="+tc.network, func(t *testing.T) {
				script := tc.script
				before := hits.Load()
				out, errOut, err := run(t, Spec{Runtime: rt, Root: sandboxRoot(t), Network: tc.network, NetNS: n,
					Args: []string{"/bin/sh", "-c", script}})
				if err != nil {
					t.Fatalf("Run: %v; stderr: %s", err, errOut)
				}
				if out != tc.want {
					t.Errorf("stdout = %q, want %q", out, tc.want)
				}
				if got := hits.Load() - before; got != tc.hits {
					t.Errorf("the host's loopback server got %d requests, want %d", got, tc.hits)
				}
			})
		}
	})
}

// buildSniffer compiles testdata/sniff, statically, into root's /bin.
func buildSniffer(t *testing.T, root string) {
	t.Helper()
	gobin, err := osexec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := osexec.Command(gobin, "build", "-o", filepath.Join(root, "bin", "sniff"), "./testdata/sniff")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the sniffer: %v\n%s", err, out)
	}
}

// TestRunPacketSocketBlind: the attack of issue 11 item 7. While another
// process sends an Authorization header to a server on the host's
// loopback, a step opens a packet socket (it keeps CAP_NET_RAW, as in
// Docker) and reads every frame it can. In the build's own namespace it
// sees none of that traffic; with NetworkHost it does, which shows the
// sniffer works.
func TestRunPacketSocketBlind(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		n := newTestNetNS(t)
		root := sandboxRoot(t)
		buildSniffer(t, root)
		port, _ := loopbackServer(t, "ok")
		var b [8]byte
		rand.Read(b[:])
		marker := "kiln-sniff-" + hex.EncodeToString(b[:])

		tests := []struct {
			network string
			want    string // prefix of the sniffer's verdict
		}{
			{"", "blind"},
			{NetworkHost, "seen"},
		}
		for _, tc := range tests {
			t.Run("network="+tc.network, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go sendAuthorized(ctx, port, marker)
				out, errOut, err := run(t, Spec{Runtime: rt, Root: root, Network: tc.network, NetNS: n,
					Args: []string{"/bin/sniff", marker, "3"}})
				if err != nil {
					t.Fatalf("Run: %v; stderr: %s", err, errOut)
				}
				if !strings.HasPrefix(out, tc.want) {
					t.Errorf("sniffer says %q, want %q…", out, tc.want)
				}
			})
		}
	})
}

// sendAuthorized sends requests with an Authorization header holding
// marker to 127.0.0.1:port, every 20ms, until ctx is done.
func sendAuthorized(ctx context.Context, port int, marker string) {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
		req.Header.Set("Authorization", "Basic "+marker)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// The test host of TestRunOutbound: a /30 whose two addresses exist only
// on the veth pair between the two network namespaces the test makes.
const (
	testClientAddr = "10.213.71.1"
	testHostAddr   = "10.213.71.2"
	testPrefix     = "/30"
)

// testNetns creates two named network namespaces, client and host, joined
// by a veth pair with testClientAddr and testHostAddr, and removes both
// (the pair goes with them) when the test ends. Neither has any other
// interface than lo, so nothing sent in them can leave the machine.
func testNetns(t *testing.T) (client, host string) {
	t.Helper()
	imagetest.Require(t, "root", "iproute2")
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	client, host = "kiln-t-"+id+"-c", "kiln-t-"+id+"-h"
	ip := func(args ...string) {
		t.Helper()
		if out, err := osexec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", client)
	t.Cleanup(func() { osexec.Command("ip", "netns", "del", client).Run() })
	ip("netns", "add", host)
	t.Cleanup(func() { osexec.Command("ip", "netns", "del", host).Run() })
	vc, vh := "kt"+id+"c", "kt"+id+"h"
	ip("link", "add", vc, "netns", client, "type", "veth", "peer", "name", vh, "netns", host)
	ip("-n", client, "addr", "add", testClientAddr+testPrefix, "dev", vc)
	ip("-n", host, "addr", "add", testHostAddr+testPrefix, "dev", vh)
	for _, ns := range []struct{ name, dev string }{{client, vc}, {host, vh}} {
		ip("-n", ns.name, "link", "set", "lo", "up")
		ip("-n", ns.name, "link", "set", ns.dev, "up")
	}
	return client, host
}

// onNetns runs f on an OS thread that has joined the named network
// namespace, and returns that namespace as its "net:[inode]" link; the
// thread is discarded afterwards, never reused.
func onNetns(t *testing.T, name string, f func()) string {
	t.Helper()
	ns, err := os.Open(filepath.Join("/run/netns", name))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	errc := make(chan error, 1)
	var link string
	go func() {
		runtime.LockOSThread() // never unlocked: the runtime drops the thread
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		var err error
		if link, err = os.Readlink("/proc/thread-self/ns/net"); err != nil {
			errc <- err
			return
		}
		f()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("joining network namespace %s: %v", name, err)
	}
	return link
}

// TestRunOutbound: a default step reaches a server outside its namespace.
// The server is a test host in a namespace of the test's own, and the
// build's NetNS is made from a thread in the test's client namespace, so
// slirp4netns, which opens the step's connections as if kiln had, lives
// there: the only route out of it is the veth pair to the test host. The
// test checks that before any traffic.
func TestRunOutbound(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		imagetest.Require(t, "slirp4netns")
		client, host := testNetns(t)

		var ln net.Listener
		onNetns(t, host, func() { ln, _ = net.Listen("tcp", testHostAddr+":0") })
		if ln == nil {
			t.Fatal("listening in the test host's namespace failed")
		}
		var hits atomic.Int32
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			io.WriteString(w, "hello from the test host")
		})}
		go srv.Serve(ln)
		defer srv.Close()

		var n *NetNS
		var nerr error
		dir := t.TempDir()
		clientNS := onNetns(t, client, func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			n, nerr = NewNetNS(ctx, NetNSOptions{Dir: dir})
		})
		if nerr != nil {
			t.Fatalf("NewNetNS: %v", nerr)
		}
		defer n.Close()
		if got, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", n.cmd.Process.Pid)); got != clientNS {
			t.Fatalf("slirp4netns runs in %s, not in the test's client namespace %s; refusing to send traffic", got, clientNS)
		}

		addr := ln.Addr().(*net.TCPAddr)
		script := fetchSh + fmt.Sprintf("fetch %s %d; echo; cat /etc/resolv.conf", addr.IP, addr.Port)
		out, errOut, err := run(t, Spec{Runtime: rt, Root: sandboxRoot(t), NetNS: n,
			Args: []string{"/bin/sh", "-c", script}})
		if err != nil {
			t.Fatalf("Run: %v; stderr: %s", err, errOut)
		}
		body, resolv, _ := strings.Cut(out, "\n")
		if body != "hello from the test host" {
			t.Errorf("fetching from %s printed %q; stderr: %s", addr, body, errOut)
		}
		if hits.Load() != 1 {
			t.Errorf("the test host got %d requests, want 1", hits.Load())
		}
		if !strings.HasPrefix(resolv, "nameserver "+slirpDNS+"\n") {
			t.Errorf("resolv.conf = %q, want slirp4netns's forwarder %s first", resolv, slirpDNS)
		}
	})
}

// TestNetNSShared: one NetNS serves many steps, concurrently, and a step
// that finishes does not take the network down for the others.
func TestNetNSShared(t *testing.T) {
	imagetest.Require(t, "root", "busybox", "runc")
	n := newTestNetNS(t)
	want := nsLink(t, n)
	errc := make(chan error, 3)
	for range 3 {
		root := sandboxRoot(t)
		go func() {
			out, errOut, err := run(t, Spec{Root: root, NetNS: n,
				Args: []string{"/bin/sh", "-c", "readlink /proc/self/ns/net"}})
			if err != nil {
				err = fmt.Errorf("%v; stderr: %s", err, errOut)
			}
			if err == nil && strings.TrimSpace(out) != want {
				err = fmt.Errorf("step in %s, want the build's %s", strings.TrimSpace(out), want)
			}
			errc <- err
		}()
	}
	for range 3 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
}

// nsLink is the "net:[inode]" name of n's namespace.
func nsLink(t *testing.T, n *NetNS) string {
	t.Helper()
	l, err := os.Readlink(n.path())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestNetNSClose: after Close, slirp4netns is gone and a step given the
// closed namespace fails clearly.
func TestNetNSClose(t *testing.T) {
	imagetest.Require(t, "root", "busybox", "runc", "slirp4netns")
	n, err := NewNetNS(context.Background(), NetNSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pid, dir := n.cmd.Process.Pid, n.dir
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := unix.Kill(pid, 0); err == nil {
		t.Errorf("slirp4netns (pid %d) still runs after Close", pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the namespace's temporary dir is still there: %v", err)
	}
	if _, _, err := run(t, Spec{NetNS: n, Args: []string{"/bin/true"}}); err != ErrNetNSClosed {
		t.Errorf("Run with a closed NetNS: %v, want %v", err, ErrNetNSClosed)
	}
}
