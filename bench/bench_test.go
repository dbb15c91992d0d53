package main

import (
	"bytes"
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
	var buf bytes.Buffer
	writeReport(&buf, m, []*projectResult{r}, evaluate(r, []buildFact{
		{kind: kindCold, group: 1, ran: 3, digest: "sha256:a"},
		{kind: kindWarm, group: 1, cached: 3, digest: "sha256:a"},
		{kind: kindEdit, group: 1, ran: 1, cached: 2, digest: "sha256:b"},
	}))
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
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
