package solve

import (
	"os"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/progress"
)

// TestNetworkPerBuild: every RUN in the default network joins one network
// namespace made for the build (so it costs once per build, not per
// step), which is neither the host's nor a none step's; RUN --network=host
// still shares the host's. Close releases it, and the next build makes
// its own.
func TestNetworkPerBuild(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox", "slirp4netns")
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	df := "FROM scratch\nCOPY busybox /bin/busybox\n" + installBusybox + `
RUN echo "default1 $(readlink /proc/self/ns/net)"
RUN echo "default2 $(readlink /proc/self/ns/net)"
RUN --network=host echo "host $(readlink /proc/self/ns/net)"
RUN --network=none echo "none $(readlink /proc/self/ns/net)"
`
	ctxDir := writeContext(t, nil)
	e := newEnv(t)
	_, b := e.solveOnce(ctxDir, df, Options{})
	ns := runNamespaces(b)
	if ns["default1"] == "" || ns["default1"] != ns["default2"] {
		t.Errorf("the default RUNs ran in %q and %q, want one namespace for the build", ns["default1"], ns["default2"])
	}
	if ns["default1"] == host || ns["default1"] == ns["none"] {
		t.Errorf("the default RUNs ran in %s: host %s, none %s", ns["default1"], host, ns["none"])
	}
	if ns["host"] != host {
		t.Errorf("RUN --network=host ran in %s, want the host's %s", ns["host"], host)
	}
	first := b.s.netns.n
	if first == nil {
		t.Fatal("no network namespace after a solve with default RUNs")
	}
	if err := b.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if b.s.netns.n != nil {
		t.Errorf("Close left the network namespace open")
	}

	// A second build whose new RUN runs makes its own namespace.
	_, b2 := e.solveOnce(ctxDir, df+"RUN echo x\n", Options{})
	if b2.s.netns.n == nil || b2.s.netns.n == first {
		t.Errorf("the second build did not make its own network namespace")
	}
}

// runNamespaces maps the first word of each RUN output line to the rest.
func runNamespaces(b *build) map[string]string {
	out := map[string]string{}
	for _, e := range b.events.Events() {
		if e.Kind != progress.Log {
			continue
		}
		if name, ns, ok := strings.Cut(e.Line, " "); ok {
			out[name] = ns
		}
	}
	return out
}
