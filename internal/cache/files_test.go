package cache

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// tree makes n files under dirs d0…d(dirs-1), each "dK/fJ", with digest
// seed-dependent for the file named changed.
func tree(dirs, perDir int, changed string) []FileSum {
	var out []FileSum
	for d := range dirs {
		out = append(out, FileSum{Path: fmt.Sprintf("d%d", d), Digest: "dddddddddddddddd"})
		for f := range perDir {
			p := fmt.Sprintf("d%d/f%d", d, f)
			dg := "0000000000000000"
			if p == changed {
				dg = "1111111111111111"
			}
			out = append(out, FileSum{Path: p, Digest: dg})
		}
	}
	return out
}

// bigDir is a directory of MaxFiles files.
func bigDir(dir string) []FileSum {
	out := []FileSum{{Path: dir, Digest: "dddddddddddddddd"}}
	for f := range MaxFiles {
		out = append(out, FileSum{Path: fmt.Sprintf("%s/f%d", dir, f), Digest: "0000000000000000"})
	}
	return out
}

func TestBoundFiles(t *testing.T) {
	t.Parallel()
	small := tree(2, 3, "")
	if got := BoundFiles(small); len(got) != len(small) || got[0].Path != "d0" {
		t.Errorf("small list: got %d entries starting %q, want all %d sorted", len(got), got[0].Path, len(small))
	}
	big := tree(4, MaxFiles, "")
	got := BoundFiles(big)
	if len(got) > MaxFiles {
		t.Fatalf("got %d entries, want at most %d", len(got), MaxFiles)
	}
	want := []string{"d0", "d0/", "d1", "d1/", "d2", "d2/", "d3", "d3/"}
	var paths []string
	for _, f := range got {
		paths = append(paths, f.Path)
	}
	if !slices.Equal(paths, want) {
		t.Errorf("folded paths: got %q, want %q", paths, want)
	}
	if huge := BoundFiles(tree(MaxFiles+1, 1, "")); huge != nil {
		t.Errorf("a top level over the bound: got %d entries, want nil", len(huge))
	}
}

func TestChangedFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		old, cur []FileSum
		want     []string
		ok       bool
	}{
		{"same", tree(2, 3, ""), tree(2, 3, ""), nil, true},
		{"one changed", tree(2, 3, ""), tree(2, 3, "d1/f2"), []string{"d1/f2"}, true},
		{"added and removed", tree(1, 2, ""), append(tree(1, 1, ""), FileSum{Path: "new", Digest: "2222222222222222"}), []string{"d0/f1", "new"}, true},
		// A tree that grew past the bound compares at the folded depth.
		{"folded against full", tree(2, 3, ""), BoundFiles(append(tree(2, 3, "d1/f0"), bigDir("d9")...)), []string{"d1/", "d9", "d9/"}, true},
		{"folded alike", BoundFiles(tree(3, MaxFiles, "")), BoundFiles(tree(3, MaxFiles, "d2/f7")), []string{"d2/"}, true},
		{"folded unchanged", BoundFiles(tree(3, MaxFiles, "")), BoundFiles(tree(3, MaxFiles, "")), nil, true},
		{"no list", nil, tree(1, 1, ""), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := ChangedFiles(tt.old, tt.cur)
			if ok != tt.ok {
				t.Fatalf("ok: got %v, want %v", ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiffInputs(t *testing.T) {
	t.Parallel()
	a := baseRun()
	b := baseRun()
	b.Env = []string{"PATH=/bin", "A=2", "B=1"}
	b.WorkDir = "/other"
	changed, added, removed := DiffInputs(a.Inputs(), b.Inputs())
	if diff := cmp.Diff([]string{"env:A", "workdir"}, changed); diff != "" {
		t.Errorf("changed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"env:B"}, added); diff != "" {
		t.Errorf("added (-want +got):\n%s", diff)
	}
	if len(removed) != 0 {
		t.Errorf("removed: got %q, want none", removed)
	}
}

// TestManifestCarriesExplanations: the step identity, base digest and file
// digests travel in a manifest, and a manifest without them (an earlier
// kiln's) still reads.
func TestManifestCarriesExplanations(t *testing.T) {
	t.Parallel()
	r := Record{Key: ScratchKey(""), Layers: []Layer{}, Step: StepID("docker/Dockerfile", "build", 3),
		Base: "sha256:ab", Files: []FileSum{{Path: "src/a.go", Digest: "0123456789abcdef"}}}
	b, err := json.Marshal(NewManifest([]Record{r}))
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, m.Records[0]); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if got, want := r.Step, "Dockerfile:build:3"; got != want {
		t.Errorf("StepID: got %q, want %q", got, want)
	}
	old := `{"schemaVersion":1,"mediaType":"application/vnd.kiln.cache.config.v1+json","layers":[],"records":[{"key":"sha256:aa","layers":[]}]}`
	if err := json.Unmarshal([]byte(old), &m); err != nil || len(m.Records) != 1 || m.Records[0].Files != nil {
		t.Errorf("earlier manifest: got %+v, %v; want one record without files", m.Records, err)
	}
}

// TestInlineLeavesFilesOut: inline cache keeps a record's step identity and
// base but not its per-path digests, which would sit in every pulled image
// config.
func TestInlineLeavesFilesOut(t *testing.T) {
	t.Parallel()
	l := Layer{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: hashOf('a'), Size: 1, DiffID: hashOf('1')}
	r := Record{Key: "sha256:k1", Layers: []Layer{l}, Step: "Dockerfile:s:1", Base: "sha256:b",
		Files: []FileSum{{Path: "a", Digest: "0123456789abcdef"}}}
	b, err := json.Marshal(NewInline([]Record{r}, []v1.Descriptor{l.Descriptor()}))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Records []map[string]json.RawMessage `json:"records"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Records) != 1 {
		t.Fatalf("got %d records, want 1", len(got.Records))
	}
	if _, ok := got.Records[0]["files"]; ok {
		t.Errorf("inline record carries files: %s", b)
	}
	for _, k := range []string{"step", "base"} {
		if _, ok := got.Records[0][k]; !ok {
			t.Errorf("inline record lacks %q: %s", k, b)
		}
	}
}

// TestRecordSizeBound: the per-path digests of a record stay bounded
// whatever the tree: at most MaxFiles entries (1,000 paths like
// "src/d000/f000.go" are 56 kB of JSON; 20,000 of them in 100 directories
// fold to the 100 directories).
func TestRecordSizeBound(t *testing.T) {
	t.Parallel()
	var files []FileSum
	for d := range 100 {
		for f := range 200 {
			files = append(files, FileSum{Path: fmt.Sprintf("src/d%03d/f%03d.go", d, f), Digest: "0123456789abcdef"})
		}
	}
	bounded := BoundFiles(files)
	b, err := json.Marshal(bounded)
	if err != nil {
		t.Fatal(err)
	}
	if len(bounded) > MaxFiles || len(b) > 80_000 {
		t.Errorf("20,000 paths bound to %d entries, %d bytes of JSON; want at most %d entries, 80 kB", len(bounded), len(b), MaxFiles)
	}
	t.Logf("20,000 paths: %d entries, %d bytes of JSON", len(bounded), len(b))
	b, _ = json.Marshal(BoundFiles(files[:MaxFiles]))
	t.Logf("%d paths: %d bytes of JSON", MaxFiles, len(b))
}
