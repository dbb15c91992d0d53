package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// These tests cover the bench's pure helpers only: the benchmark itself
// needs root and runc and takes minutes, so it runs as `go run ./bench`,
// never under go test.

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []int64
		want int64
	}{
		{"empty", nil, 0},
		{"one", []int64{7}, 7},
		{"odd unsorted", []int64{9, 1, 5}, 5},
		{"even takes the mean of the middle two", []int64{4, 1, 3, 2}, 2},
		{"even rounds down", []int64{1, 2}, 1},
		{"outlier does not move it", []int64{10, 11, 12, 10_000}, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			if got := median(in); got != tt.want {
				t.Errorf("median(%v) = %d, want %d", tt.in, got, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Errorf("median modified its input: %v, want %v", in, tt.in)
			}
		})
	}
}

func TestMedianDuration(t *testing.T) {
	got := median([]time.Duration{3 * time.Second, time.Second, 2 * time.Second})
	if got != 2*time.Second {
		t.Errorf("got %v, want 2s", got)
	}
}

func TestMedianStat(t *testing.T) {
	got := medianStat([]cacheStat{
		{Source: "type=local,src=C", Hits: 6, BytesRead: 10, BytesWritten: 0},
		{Source: "type=local,src=C", Hits: 4, BytesRead: 30, BytesWritten: 5},
		{Source: "type=local,src=C", Hits: 5, BytesRead: 20, BytesWritten: 1},
	})
	want := cacheStat{Source: "type=local,src=C", Hits: 5, BytesRead: 20, BytesWritten: 1}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{fmtDuration(17 * time.Millisecond), "0.017 s"},
		{fmtDuration(2090 * time.Millisecond), "2.09 s"},
		{fmtDuration(75 * time.Second), "75.0 s"},
		{fmtBytes(0), "0 B"},
		{fmtBytes(999), "999 B"},
		{fmtBytes(1200), "1.2 kB"},
		{fmtBytes(22_729_520), "22.7 MB"},
		{fmtBytes(3_500_000_000), "3.5 GB"},
		{fmtRatio(1.84), "1.8×"},
		{fmtRatio(126.4), "126×"},
		{passFail(true), "PASS"},
		{passFail(false), "FAIL"},
		{short("sha256:cb09f0856490aaaa"), "cb09f0856490"},
		{short(""), "none"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestRatio(t *testing.T) {
	if got := ratio(3, 2); got != 1.5 {
		t.Errorf("ratio(3, 2) = %v, want 1.5", got)
	}
	if got := ratio(3, 0); got != 0 {
		t.Errorf("ratio(3, 0) = %v, want 0", got)
	}
}

func TestNormalizeSource(t *testing.T) {
	tests := []struct {
		src, dir, want string
	}{
		{"type=local,src=/tmp/b/run-1/cache", "/tmp/b/run-1/cache", "type=local,src=C"},
		{"type=local,dest=/tmp/b/run-1/cache,mode=max", "/tmp/b/run-1/cache", "type=local,dest=C,mode=max"},
		{"local state", "/tmp/b/run-1/cache", "local state"},
		{"type=local,src=/x", "", "type=local,src=/x"},
	}
	for _, tt := range tests {
		if got := normalizeSource(tt.src, tt.dir); got != tt.want {
			t.Errorf("normalizeSource(%q, %q) = %q, want %q", tt.src, tt.dir, got, tt.want)
		}
	}
}

func TestMarkdownTable(t *testing.T) {
	got := markdownTable([]string{"project", "cold"}, []bool{false, true},
		[][]string{{"small", "2.09 s"}, {"multi-stage", "4.36 s"}})
	want := "" +
		"| project     |   cold |\n" +
		"| ----------- | -----: |\n" +
		"| small       | 2.09 s |\n" +
		"| multi-stage | 4.36 s |\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestUnescapeMount(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/tmp/plain", "/tmp/plain"},
		{`/tmp/with\040space`, "/tmp/with space"},
		{`/tmp/tab\011and\134slash`, "/tmp/tab\tand\\slash"},
		{`/tmp/short\04`, `/tmp/short\04`},
	}
	for _, tt := range tests {
		if got := unescapeMount(tt.in); got != tt.want {
			t.Errorf("unescapeMount(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestBuildSpecArgs(t *testing.T) {
	s := buildSpec{context: "/w/ctx", cache: "/w/c", from: true, to: true, ociDest: "/w/i.tar", meta: "/w/m.json"}
	got := strings.Join(s.args(), " ")
	want := "build --progress plain --metadata-file /w/m.json --cache-from type=local,src=/w/c " +
		"--cache-to type=local,dest=/w/c,mode=max --output type=oci,dest=/w/i.tar /w/ctx"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestProjectsAreSelfContained(t *testing.T) {
	for _, p := range projects() {
		if _, ok := p.files["Dockerfile"]; !ok {
			t.Errorf("%s: no Dockerfile", p.name)
		}
		if strings.Contains(p.files["Dockerfile"], "FROM ") && !strings.Contains(p.files["Dockerfile"], "FROM scratch") {
			t.Errorf("%s: every stage must start FROM scratch (nothing is pulled)", p.name)
		}
		if len(p.sources) == 0 {
			t.Errorf("%s: no sources for the cache-size series", p.name)
		}
		for _, s := range p.sources {
			if _, ok := p.files[s]; !ok {
				t.Errorf("%s: source %s is not in the context", p.name, s)
			}
		}
	}
}

// result builds a projectResult with the given sizes and warm read bytes.
func result(sizes []int64, warmRead int64) *projectResult {
	r := newProjectResult("p")
	r.sizes = sizes
	r.add(kindWarm, "/c", buildResult{wall: time.Second, md: metadata{Summary: &summary{
		Steps: 3, Cached: 3, Caches: []cacheStat{{Source: "type=local,src=/c", Hits: 3, BytesRead: warmRead}},
	}}})
	return r
}

func TestEvaluate(t *testing.T) {
	good := []buildFact{
		{kind: kindCold, group: 1, ran: 3, digest: "sha256:a"},
		{kind: kindWarm, group: 1, cached: 3, digest: "sha256:a"},
		{kind: kindWarmOCI, group: 1, cached: 3, digest: "sha256:a"},
		{kind: kindEdit, group: 1, ran: 2, cached: 1, digest: "sha256:b"},
	}
	tests := []struct {
		name     string
		r        *projectResult
		facts    []buildFact
		wantFail []string // substrings of the checks that must fail
	}{
		{"all met", result([]int64{100, 105}, 0), good, nil},
		{"cache grows", result([]int64{100, 111}, 0), good, []string{"after 1 build"}},
		{"no series", result([]int64{100}, 0), good, []string{"after 1 build"}},
		{"warm reads bytes", result([]int64{100, 100}, 5), good, []string{"read no layer bytes"}},
		{"warm re-runs a step", result([]int64{100, 100}, 0), append(slices.Clone(good[:1]),
			buildFact{kind: kindWarm, group: 1, ran: 1, cached: 2, digest: "sha256:a"},
			good[3]), []string{"warm rebuilds"}},
		{"warm digest differs", result([]int64{100, 100}, 0), append(slices.Clone(good[:1]),
			buildFact{kind: kindWarmOCI, group: 1, cached: 3, digest: "sha256:z"},
			good[3]), []string{"warm rebuilds"}},
		{"nothing measured", result([]int64{100, 100}, 0), nil, []string{"warm rebuilds", "after an edit"}},
		{"edit not noticed", result([]int64{100, 100}, 0), append(slices.Clone(good[:3]),
			buildFact{kind: kindEdit, group: 1, cached: 3, digest: "sha256:a"}), []string{"after an edit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var failed []string
			for _, c := range evaluate(tt.r, tt.facts) {
				if !c.ok {
					failed = append(failed, c.text)
				}
			}
			if len(failed) != len(tt.wantFail) {
				t.Fatalf("failed checks %q, want %d matching %q", failed, len(tt.wantFail), tt.wantFail)
			}
			for i, want := range tt.wantFail {
				if !strings.Contains(failed[i], want) {
					t.Errorf("failed check %q, want one about %q", failed[i], want)
				}
			}
		})
	}
}

func TestWriteReport(t *testing.T) {
	r := result([]int64{12_800_000, 12_900_000}, 0)
	r.add(kindCold, "/c", buildResult{wall: 2 * time.Second, md: metadata{Summary: &summary{Steps: 3, Ran: 3,
		Caches: []cacheStat{{Source: "type=local,dest=/c,mode=max", BytesWritten: 12_800_000}}}}})
	m := machine{date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), nproc: 2, cpu: "CPU", kernel: "6.1",
		fs: "ext4", kiln: "kiln v1", runc: "runc 1.1", runs: 5, edits: 1}
	reg := &registryReport{version: "docker-registry 2.8", results: []*regResult{{
		project: "p", workflow: "registry", steps: 3,
		runs: []regRun{{cold: 4 * time.Second, warm: 200 * time.Millisecond, warmCached: 3,
			coldTraffic: split{upLayers: 12_000_000, upOther: 3000},
			warmTraffic: split{requests: 9, depth: 4, downOther: 2500, upOther: 1200}}},
	}}}
	checks := evaluate(r, []buildFact{
		{kind: kindCold, group: 1, ran: 3, digest: "sha256:a"},
		{kind: kindWarm, group: 1, cached: 3, digest: "sha256:a"},
		{kind: kindEdit, group: 1, ran: 1, cached: 2, digest: "sha256:b"},
	})
	checks = append(checks, check{project: "p inline", text: "only the final stage", note: true})
	var buf bytes.Buffer
	writeReport(&buf, m, []*projectResult{r}, reg, checks)
	out := buf.String()
	for _, want := range []string{
		"- date: 2026-01-02 03:04 UTC",
		"nproc 2, CPU, kernel 6.1",
		"- runs: 5 (medians shown)",
		"| p       |     3 | 2.00 s | 1.00 s |      2.0× |",
		"| p       |       12.8 MB |         12.9 MB |       1.01 PASS | 12.8 → 12.9 |",
		"| p       | cold  | `type=local,dest=C,mode=max` |    0 |  0 B | 12.8 MB |",
		"| p       | warm  | `type=local,src=C`           |    3 |  0 B |     0 B |",
		"- PASS p: warm rebuilds ran no step and gave the cold digest (1/1 builds)",
		"- PASS p: cache dir after 1 edited rebuilds / after 1 build = 1.01",
		"- registry: docker-registry 2.8 on 127.0.0.1",
		"- inline: `--push -t REG/app:latest --cache-from type=registry,ref=REG/app:latest --cache-to type=inline`",
		"| p       | registry |     3 | 4.00 s | 0.20 s |     20.0× |           3 / 0 |",
		"| p       | registry | 12.0 MB |             9 |          4 |               0 B |                         2.5 kB |             0 B |                       1.2 kB |",
		"- NOTE p inline: only the final stage",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteReportRegistrySkipped(t *testing.T) {
	var buf bytes.Buffer
	writeReport(&buf, machine{}, nil, &registryReport{skipped: "-registry=false"}, nil)
	if !strings.Contains(buf.String(), "### Registry cache (build-push-action workflows)\n\nSkipped: -registry=false.\n") {
		t.Errorf("no skip note in\n%s", buf.String())
	}
}

func TestCheckStatus(t *testing.T) {
	tests := []struct {
		c          check
		status     string
		wantMissed bool
	}{
		{check{ok: true}, "PASS", false},
		{check{ok: false}, "FAIL", true},
		{check{ok: true, note: true}, "PASS", false},
		{check{ok: false, note: true}, "NOTE", false},
	}
	for _, tt := range tests {
		if got := tt.c.status(); got != tt.status {
			t.Errorf("%+v: status %s, want %s", tt.c, got, tt.status)
		}
		if got := tt.c.missed(); got != tt.wantMissed {
			t.Errorf("%+v: missed %v, want %v", tt.c, got, tt.wantMissed)
		}
	}
}

func TestWorkflowArgs(t *testing.T) {
	want := map[string]string{
		"inline": "--push -t R/app:latest --cache-from type=registry,ref=R/app:latest --cache-to type=inline",
		"registry": "--push -t R/app:latest --cache-from type=registry,ref=R/app:buildcache " +
			"--cache-to type=registry,ref=R/app:buildcache,mode=max",
	}
	for _, w := range workflows {
		if got := strings.Join(w.args("R/app"), " "); got != want[w.name] {
			t.Errorf("%s: got %q, want %q", w.name, got, want[w.name])
		}
	}
	s := buildSpec{context: "/c", meta: "/m.json", extra: workflows[0].args("R/app")}
	if got := strings.Join(s.args(), " "); got != "build --progress plain --metadata-file /m.json "+want["inline"]+" /c" {
		t.Errorf("build args %q", got)
	}
}

func TestIsMultiStage(t *testing.T) {
	got := map[string]bool{}
	for _, p := range projects() {
		got[p.name] = isMultiStage(p)
	}
	if got["small"] || !got["multi-stage"] {
		t.Errorf("isMultiStage: %v", got)
	}
}

func TestParseManifest(t *testing.T) {
	layers, children, err := parseManifest([]byte(`{"schemaVersion":2,"config":{"digest":"sha256:c"},` +
		`"layers":[{"digest":"sha256:l1"},{"digest":"sha256:l2"}]}`))
	if err != nil || !slices.Equal(layers, []string{"sha256:l1", "sha256:l2"}) || children != nil {
		t.Errorf("image manifest: %v %v %v", layers, children, err)
	}
	layers, children, err = parseManifest([]byte(`{"schemaVersion":2,"manifests":[{"digest":"sha256:m"}]}`))
	if err != nil || layers != nil || !slices.Equal(children, []string{"sha256:m"}) {
		t.Errorf("index: %v %v %v", layers, children, err)
	}
	if _, _, err := parseManifest([]byte("nope")); err == nil {
		t.Error("no error for a bad manifest")
	}
}

func digestOf(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

// TestCountingProxy runs the proxy in front of a fake registry and checks
// what it counts for downloads, an upload session, a monolithic upload,
// an unfinished upload and a manifest push.
func TestCountingProxy(t *testing.T) {
	layer, config, mono := digestOf('a'), digestOf('b'), digestOf('d')
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+layer):
			w.Write(make([]byte, 1000))
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+config):
			w.Write(make([]byte, 100))
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/"):
			w.Write(make([]byte, 50))
		case r.Method == http.MethodHead:
			w.Header().Set("Content-Length", "1000")
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	defer fake.Close()
	p, err := newCountingProxy(strings.TrimPrefix(fake.URL, "http://"), 0, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	base := "http://" + p.addr + "/v2/x/app"
	do := func(method, path string, body int) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, bytes.NewReader(make([]byte, body)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	p.reset()
	do(http.MethodGet, "/blobs/"+layer, 0)
	do(http.MethodGet, "/blobs/"+config, 0)
	do(http.MethodHead, "/blobs/"+layer, 0)
	do(http.MethodGet, "/manifests/latest", 0)
	do(http.MethodPost, "/blobs/uploads/", 0)
	do(http.MethodPatch, "/blobs/uploads/u1", 300)
	do(http.MethodPatch, "/blobs/uploads/u1", 200)
	do(http.MethodPut, "/blobs/uploads/u1?digest="+layer, 10)
	do(http.MethodPost, "/blobs/uploads/?digest="+mono, 40)
	do(http.MethodPatch, "/blobs/uploads/u2", 7)
	do(http.MethodPut, "/manifests/latest", 60)
	got := p.snapshot()
	if got.requests != 11 {
		t.Errorf("requests = %d, want 11", got.requests)
	}
	if got.downBlobs[layer] != 1000 || got.downBlobs[config] != 100 || got.downManifests != 50 {
		t.Errorf("downloads: %v, manifests %d", got.downBlobs, got.downManifests)
	}
	if got.upBlobs[layer] != 510 || got.upBlobs[mono] != 40 || got.upUnfinished != 7 || got.upManifests != 60 {
		t.Errorf("uploads: %v, unfinished %d, manifests %d", got.upBlobs, got.upUnfinished, got.upManifests)
	}
	s := got.splitBy(map[string]bool{layer: true})
	want := split{requests: 11, depth: 11, downLayers: 1000, downOther: 150, upLayers: 517, upOther: 100}
	if s != want {
		t.Errorf("split = %+v, want %+v", s, want)
	}
	p.reset()
	if got := p.snapshot(); got.requests != 0 || len(got.downBlobs) != 0 || got.upUnfinished != 0 {
		t.Errorf("after reset: %+v", got)
	}
}

func TestEvaluateRegistry(t *testing.T) {
	good := regRun{coldDigest: "sha256:a", warmDigest: "sha256:a", tagDigest: "sha256:a", warmCached: 6}
	rerun := regRun{coldDigest: "sha256:a", warmDigest: "sha256:b", tagDigest: "sha256:b", warmRan: 13, warmCached: 2}
	pulled := good
	pulled.warmTraffic.downLayers = 1234
	tests := []struct {
		name   string
		r      regResult
		status []string
	}{
		{"all met", regResult{runs: []regRun{good, good}}, []string{"PASS", "PASS"}},
		{"no runs", regResult{}, []string{"FAIL", "FAIL"}},
		{"warm re-ran", regResult{runs: []regRun{good, rerun}}, []string{"FAIL", "PASS"}},
		{"tag names another digest", regResult{runs: []regRun{{coldDigest: "sha256:a", warmDigest: "sha256:a", tagDigest: "sha256:z"}}},
			[]string{"FAIL", "PASS"}},
		{"layer bytes pulled", regResult{runs: []regRun{good, pulled}}, []string{"PASS", "FAIL"}},
		{"inline multi-stage is a note", regResult{minOnly: true, steps: 15, runs: []regRun{rerun, pulled}}, []string{"NOTE", "NOTE"}},
		{"inline multi-stage that hits passes", regResult{minOnly: true, runs: []regRun{good}}, []string{"PASS", "PASS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.project, tt.r.workflow = "p", "w"
			checks := evaluateRegistry(&tt.r)
			var got []string
			for _, c := range checks {
				got = append(got, c.status())
				if c.project != "p w" {
					t.Errorf("project %q", c.project)
				}
			}
			if !slices.Equal(got, tt.status) {
				t.Errorf("statuses %v, want %v: %+v", got, tt.status, checks)
			}
		})
	}
	c := evaluateRegistry(&regResult{minOnly: true, steps: 15, runs: []regRun{rerun}})[0]
	if !strings.Contains(c.text, "ran 13 of 15 steps (median) and pushed the cold digest in 0/1 runs") ||
		!strings.Contains(c.text, "only the final stage is cached") {
		t.Errorf("note text %q", c.text)
	}
}

func TestRegistryVersion(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/usr/bin/docker-registry github.com/docker/distribution 2.8.2+ds1", "docker-registry github.com/docker/distribution 2.8.2+ds1"},
		{"unknown", "docker-registry (version unknown)"},
	}
	for _, tt := range tests {
		if got := registryVersion(tt.in); got != tt.want {
			t.Errorf("registryVersion(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestDepth: the sequential depth of round trips counts only those that
// wait for the one before them.
func TestDepth(t *testing.T) {
	at := func(a, b int) span {
		base := time.Unix(0, 0)
		return span{base.Add(time.Duration(a) * time.Millisecond), base.Add(time.Duration(b) * time.Millisecond)}
	}
	for _, c := range []struct {
		spans []span
		want  int
	}{
		{nil, 0},
		{[]span{at(0, 10)}, 1},
		{[]span{at(0, 10), at(0, 10), at(1, 9)}, 1},                // all at once
		{[]span{at(0, 10), at(10, 20), at(20, 30)}, 3},             // one after the other
		{[]span{at(20, 30), at(0, 10), at(10, 20), at(5, 25)}, 3},  // unsorted, one overlapping
		{[]span{at(0, 10), at(11, 20), at(11, 20), at(21, 30)}, 3}, // two in the middle at once
		{[]span{at(0, 100), at(0, 10), at(10, 20), at(20, 30)}, 3}, // a long one beside a chain
		{[]span{at(0, 10), at(5, 15), at(10, 20), at(15, 25)}, 2},  // staggered
		{[]span{at(0, 10), at(10, 20), at(10, 20), at(10, 20)}, 2}, // fan-out
	} {
		if got := depth(c.spans); got != c.want {
			t.Errorf("depth(%v) = %d, want %d", c.spans, got, c.want)
		}
	}
}

// TestWriteCompare: the -compare report prints kiln / BuildKit = ratio per
// flow, the warm registry round trips of both, and the bigcontext delta.
func TestWriteCompare(t *testing.T) {
	mk := func(name string, k, b time.Duration, req, dep int) *cresult {
		r := &cresult{project: cproject{name: name, note: "n"}}
		for fi := range cflows {
			r.builds[fi][0] = []cbuild{{wall: k, rss: 20 << 20, requests: req, depth: dep}}
			r.builds[fi][1] = []cbuild{{wall: b, requests: 3 * req, depth: 3 * dep}}
		}
		return r
	}
	var buf bytes.Buffer
	big := mk("bigcontext", 300*time.Millisecond, 3*time.Second, 5, 4)
	big.floor, big.floorBytes, big.floorRuns = 93*time.Millisecond, 200<<20, 5
	writeCompare(&buf, machine{nproc: 2, runs: 1}, 25*time.Millisecond, "buildkitd v0.34.2",
		[]*cresult{big, mk("bigcontext-empty", 250*time.Millisecond, time.Second, 5, 4)})
	out := buf.String()
	for _, want := range []string{
		"0.300 s / 3.00 s = 0.10",
		"| bigcontext       | 5 in depth 4 | 15 in depth 12 |",
		"which adds 25ms to every request",
		"bigcontext warm from local: 0.050 s more than the same Dockerfile with an empty context",
		"bigcontext hashing floor: 0.093 s to read and hash its context's 209.7 MB",
		"20.0 MiB",
		"| floor: BuildKit's RUN / BuildKit |",
		"BuildKit's RUN: completed − started of BuildKit's executed RUN vertices",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if flowIndex(true, false) != 0 || flowIndex(true, true) != 1 || flowIndex(false, false) != 2 || flowIndex(false, true) != 3 {
		t.Error("flowIndex does not follow cflows")
	}
}

// TestRunExecTime: the exec phases of the RUN steps are added up from
// kiln's --debug lines, COPY steps left out; a RUN without its phases line
// gives no figure rather than a wrong one.
func TestRunExecTime(t *testing.T) {
	out := `time=2026-12-03T13:59:27.475Z level=DEBUG msg="step miss" step=1 text="COPY busybox /bin/busybox" key=sha256:80e2 quick="" parent=sha256:3b4a
#1 [stage-0 1/9] COPY busybox /bin/busybox
time=2026-12-03T13:59:27.548Z level=DEBUG msg="step phases" step=1 unpack=0s prepare=300µs exec=5.2ms diff=66.7ms commit=500µs record=300µs release=500µs
time=2026-12-03T13:59:27.549Z level=DEBUG msg="step miss" step=2 text="RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]" key=sha256:cab7 quick="" parent=sha256:80e2
time=2026-12-03T13:59:27.644Z level=DEBUG msg="step phases" step=2 unpack=0s prepare=300µs exec=89.6ms diff=4.7ms commit=800µs record=100µs release=400µs
time=2026-12-03T13:59:27.652Z level=DEBUG msg="step miss" step=12 text="RUN sh gen.sh" key=sha256:4e92 quick="" parent=sha256:f61b
time=2026-12-03T13:59:29.302Z level=DEBUG msg="step phases" step=12 unpack=100µs prepare=400µs exec=1.4623s diff=186.2ms commit=500µs record=100µs release=500µs
`
	if got, want := runExecTime(out), 89600*time.Microsecond+1462300*time.Microsecond; got != want {
		t.Errorf("runExecTime = %v, want %v", got, want)
	}
	missing := out + `time=2026-12-03T13:59:29.302Z level=DEBUG msg="step miss" step=13 text="RUN true" key=sha256:0 quick="" parent=sha256:4e92
`
	if got := runExecTime(missing); got != -1 {
		t.Errorf("runExecTime with a RUN that has no phases = %v, want -1", got)
	}
	if got := runExecTime("no debug output\n"); got != 0 {
		t.Errorf("runExecTime of a build that ran no RUN = %v, want 0", got)
	}
}

// TestWorkRows: kiln's and BuildKit's RUN times and walls are medians
// over the runs; the floor is BuildKit's RUN time over its wall time; the
// RUN ratio and the rest compare each tool's own figures; a figure some
// build lacks is n/a, and so is each ratio that needs it.
func TestWorkRows(t *testing.T) {
	s, ms := time.Second, time.Millisecond
	p := &cresult{project: cproject{name: "p"}}
	p.builds[0][0] = []cbuild{{wall: 2 * s, runExec: s}, {wall: 3 * s, runExec: 1100 * ms}, {wall: 2 * s, runExec: 900 * ms}}
	p.builds[0][1] = []cbuild{{wall: 4 * s, runExec: 800 * ms}, {wall: 5 * s, runExec: 1200 * ms}, {wall: 3 * s, runExec: 400 * ms}}
	p.builds[1][0] = []cbuild{{wall: s, runExec: -1}} // warm flows have no row
	p.builds[1][1] = []cbuild{{wall: s, runExec: -1}}
	p.builds[2][0] = []cbuild{{wall: 2 * s, runExec: -1}}
	p.builds[2][1] = []cbuild{{wall: 4 * s, runExec: s}}
	q := &cresult{project: cproject{name: "q"}}
	q.builds[0][0] = []cbuild{{wall: 2 * s, runExec: s}, {wall: 2 * s, runExec: s}}
	q.builds[0][1] = []cbuild{{wall: 4 * s, runExec: s}, {wall: 4 * s, runExec: -1}}
	q.builds[2][0] = []cbuild{{wall: 3 * s, runExec: s}}
	q.builds[2][1] = []cbuild{{wall: 2 * s, runExec: 2 * s}}
	kilnOnly := &cresult{project: cproject{name: "kiln-only"}}
	kilnOnly.builds[0][0] = []cbuild{{wall: s, runExec: s}}
	got := workRows([]*cresult{p, q, kilnOnly})
	want := [][]string{
		{"p", "cold + registry export", "2.00 s", "1.00 s", "4.00 s", "0.800 s", "0.20", "1.25", "0.31"},
		{"p", "cold + local export", "2.00 s", "n/a", "4.00 s", "1.00 s", "0.25", "n/a", "n/a"},
		{"q", "cold + registry export", "2.00 s", "1.00 s", "4.00 s", "n/a", "n/a", "n/a", "n/a"},
		{"q", "cold + local export", "3.00 s", "1.00 s", "2.00 s", "2.00 s", "1.00", "0.50", "—"},
	}
	if len(got) != len(want) {
		t.Fatalf("rows = %q, want %q", got, want)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("row %d = %q, want %q", i, got[i], want[i])
		}
	}
}

// bkSample is buildctl --progress rawjson output written after a real
// one: a vertex in several status lines, a cached RUN, non-RUN vertices,
// a status line of logs only and a line that is not JSON.
const bkSample = `{"vertexes":[{"digest":"sha256:aa","name":"[internal] load build definition from Dockerfile","started":"2026-12-03T14:00:00.100000000Z"}]}
{"vertexes":[{"digest":"sha256:aa","name":"[internal] load build definition from Dockerfile","started":"2026-12-03T14:00:00.100000000Z","completed":"2026-12-03T14:00:00.200000000Z"}]}
{"vertexes":[{"digest":"sha256:bb","inputs":["sha256:aa"],"name":"[stage-0 1/4] COPY busybox /bin/busybox","started":"2026-12-03T14:00:00.300000000Z","completed":"2026-12-03T14:00:01.300000000Z"}]}
{"vertexes":[{"digest":"sha256:cc","inputs":["sha256:bb"],"name":"[stage-0 2/4] RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]"}]}
{"vertexes":[{"digest":"sha256:cc","inputs":["sha256:bb"],"name":"[stage-0 2/4] RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]","started":"2026-12-03T14:00:01.400000000Z"}]}
{"logs":[{"vertex":"sha256:cc","stream":1,"data":"aW5zdGFsbGVkCg==","timestamp":"2026-12-03T14:00:01.500000000Z"}]}
{"vertexes":[{"digest":"sha256:cc","inputs":["sha256:bb"],"name":"[stage-0 2/4] RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]","started":"2026-12-03T14:00:01.400000000Z","completed":"2026-12-03T14:00:01.900000000Z"}],"statuses":[{"id":"x","vertex":"sha256:cc","current":1}]}
{"vertexes":[{"digest":"sha256:dd","inputs":["sha256:cc"],"name":"[stage-0 3/4] RUN echo cached","started":"2026-12-03T14:00:02.000000000Z","completed":"2026-12-03T14:00:09.000000000Z","cached":true}]}
WARN[0002] a line of buildctl's own
{"vertexes":[{"digest":"sha256:ee","inputs":["sha256:dd"],"name":"[build 2/7] RUN sh gen.sh","started":"2026-12-03T14:00:02.000000000Z","completed":"2026-12-03T14:00:03.000000000Z"}]}
{"vertexes":[{"digest":"sha256:ee","inputs":["sha256:dd"],"name":"[build 2/7] RUN sh gen.sh","started":"2026-12-03T14:00:02.000000000Z","completed":"2026-12-03T14:00:03.250000000Z"}]}
{"vertexes":[{"digest":"sha256:ff","name":"exporting to image","started":"2026-12-03T14:00:03.300000000Z","completed":"2026-12-03T14:00:08.000000000Z"}]}
`

// TestBuildkitRunTime: BuildKit's RUN time is the sum of its RUN
// vertices' last completed − started, cached and non-RUN vertices left
// out; output that does not parse gives no figure.
func TestBuildkitRunTime(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		out  string
		want time.Duration
	}{
		{"sample", bkSample, 500*ms + 1250*ms},
		{"no RUN", strings.Join(strings.SplitAfter(bkSample, "\n")[:3], ""), 0},
		{"bad status line", bkSample + `{"vertexes":[{"digest":"sha256:11","name":"[3/4] RUN tr` + "\n", -1},
		{"RUN never completed", bkSample + `{"vertexes":[{"digest":"sha256:12","name":"[4/4] RUN sleep 9","started":"2026-12-03T14:00:04Z"}]}` + "\n", -1},
		{"completed before started", bkSample + `{"vertexes":[{"digest":"sha256:13","name":"[4/4] RUN x","started":"2026-12-03T14:00:04Z","completed":"2026-12-03T14:00:03Z"}]}` + "\n", -1},
		{"no status lines", "#1 [internal] load build definition\nerror: failed to solve\n", -1},
		{"empty", "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildkitRunTime(tt.out); got != tt.want {
				t.Errorf("buildkitRunTime = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestBuildctlTail: a failed build's tail shows the command's output, the
// vertex's error once and buildctl's error line, not the JSON.
func TestBuildctlTail(t *testing.T) {
	out := bkSample +
		`{"logs":[{"vertex":"sha256:99","stream":2,"data":"c2g6IG5vcGU6IG5vdCBmb3VuZA==","timestamp":"2026-12-03T14:00:04Z"}]}` + "\n" +
		`{"vertexes":[{"digest":"sha256:99","name":"[3/4] RUN nope","started":"2026-12-03T14:00:04Z","completed":"2026-12-03T14:00:05Z","error":"process \"/bin/sh -c nope\" did not complete successfully: exit code: 127"}]}` + "\n" +
		`{"vertexes":[{"digest":"sha256:99","name":"[3/4] RUN nope","started":"2026-12-03T14:00:04Z","completed":"2026-12-03T14:00:05Z","error":"process \"/bin/sh -c nope\" did not complete successfully: exit code: 127"}]}` + "\n" +
		`{"vertexes":[{"digest":"sha256:98","name":"[3/4] RUN trunc` + "\n" +
		"error: failed to solve: process \"/bin/sh -c nope\" did not complete successfully: exit code: 127\n"
	got := buildctlTail(out, 5)
	want := "WARN[0002] a line of buildctl's own\n" +
		"sh: nope: not found\n" +
		"[3/4] RUN nope: process \"/bin/sh -c nope\" did not complete successfully: exit code: 127\n" +
		`{"vertexes":[{"digest":"sha256:98","name":"[3/4] RUN trunc` + "\n" +
		"error: failed to solve: process \"/bin/sh -c nope\" did not complete successfully: exit code: 127"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := buildctlTail(strings.Repeat("{", 5000), 1); len(got) > 1100 {
		t.Errorf("a long line is kept whole (%d bytes)", len(got))
	}
	if got := firstErrorLine(errors.New("buildctl build: exit status 1\n" + got)); !strings.HasPrefix(got, "error: failed to solve") {
		t.Errorf("firstErrorLine of the tail = %q", got)
	}
}

// TestHashFloor: the floor pass hashes every byte of every regular file
// under the dir, nested ones included, and a file it cannot read fails it.
func TestHashFloor(t *testing.T) {
	dir := t.TempDir()
	if err := randomFiles(filepath.Join(dir, "data"), 150, 3000); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, 300<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("big", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	d, n, err := hashFloor(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(150*3000 + 300<<10); n != want || d <= 0 {
		t.Errorf("hashFloor: %d bytes in %v, want %d bytes in some time", n, d, want)
	}
	if _, err := hashAll([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Error("hashAll of a missing file: no error")
	}
}
