package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"sort"
	"strconv"
	"strings"
)

// MaxFiles bounds the per-path digests a record carries (Record.Files), so
// that a COPY of a large tree never makes a record, and every manifest that
// holds it, grow with the tree.
const MaxFiles = 1000

// fileDigestLen is how many hex digits of a path's sha256 a FileSum keeps:
// 64 bits tell a changed file from an unchanged one; they are no security
// boundary (the key covers the full content digest).
const fileDigestLen = 16

// FileSum is the digest of one path a COPY or ADD copied: its type, mode,
// link target and contents, as the content digest covers them. A Path
// ending in "/" is a folded directory (see BoundFiles) and its Digest
// covers everything below it.
type FileSum struct {
	// Path is the slash path the step read, relative to its source root.
	Path string `json:"path"`
	// Digest is the first 16 hex digits of the path's sha256.
	Digest string `json:"digest"`
}

// ShortDigest cuts a hex digest (with or without "sha256:") to the length
// a FileSum keeps.
func ShortDigest(hexDigest string) string {
	h := strings.TrimPrefix(hexDigest, "sha256:")
	if len(h) > fileDigestLen {
		h = h[:fileDigestLen]
	}
	return h
}

// BoundFiles returns files, sorted by path, with at most MaxFiles entries.
// When there are more, the paths are folded: everything below depth d (in
// path elements) becomes one entry for its directory at depth d, path with
// a trailing "/", for the deepest d that fits. A folded directory's digest
// is a Merkle digest over its children, so two lists folded at different
// depths still compare (see ChangedFiles). When even the top level does not
// fit, BoundFiles returns nil: the record then names no files.
func BoundFiles(files []FileSum) []FileSum {
	out := sortedFiles(files)
	if len(out) <= MaxFiles {
		return out
	}
	for d := maxDepth(out) - 1; d >= 1; d-- {
		if f := foldTo(out, d); len(f) <= MaxFiles {
			return f
		}
	}
	return nil
}

// ChangedFiles returns the paths whose digests differ between two lists
// of one step (changed, added or removed), sorted; folded directories
// appear as such. When either list is folded, both are compared at the
// coarser depth. ok is false when a list is empty, since a record without
// files (an earlier kiln, inline cache, a tree too large) cannot say what
// changed.
func ChangedFiles(old, cur []FileSum) (changed []string, ok bool) {
	if len(old) == 0 || len(cur) == 0 {
		return nil, false
	}
	old, cur = sortedFiles(old), sortedFiles(cur)
	if d := coarser(foldDepth(old), foldDepth(cur)); d > 0 {
		old, cur = foldTo(old, d), foldTo(cur, d)
	}
	was := make(map[string]string, len(old))
	for _, f := range old {
		was[f.Path] = f.Digest
	}
	for _, f := range cur {
		if d, ok := was[f.Path]; !ok || d != f.Digest {
			changed = append(changed, f.Path)
		}
		delete(was, f.Path)
	}
	for p := range was {
		changed = append(changed, p)
	}
	sort.Strings(changed)
	return changed, true
}

// StepID is the identity of a step without its contents: the Dockerfile's
// base name, the stage's label and the step's position in the stage (1 for
// the first instruction after FROM). Only the base name of the Dockerfile
// enters it, so that it is the same on every machine.
func StepID(dockerfile, stage string, position int) string {
	return path.Base(dockerfile) + ":" + stage + ":" + strconv.Itoa(position)
}

func sortedFiles(files []FileSum) []FileSum {
	out := append([]FileSum(nil), files...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// depth is how many path elements p has ("a/b" 2, "a/" 1).
func depth(p string) int {
	return strings.Count(strings.TrimSuffix(p, "/"), "/") + 1
}

func maxDepth(files []FileSum) int {
	d := 0
	for _, f := range files {
		d = max(d, depth(f.Path))
	}
	return d
}

// foldDepth is the depth a list was folded at, 0 if it was not.
func foldDepth(files []FileSum) int {
	d := 0
	for _, f := range files {
		if strings.HasSuffix(f.Path, "/") {
			if fd := depth(f.Path); d == 0 || fd < d {
				d = fd
			}
		}
	}
	return d
}

// coarser is the smaller of two fold depths, where 0 (not folded) is the
// finest.
func coarser(a, b int) int {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// foldTo folds every entry deeper than d into its directory at depth d.
func foldTo(files []FileSum, d int) []FileSum {
	root := &dirNode{children: map[string]*dirNode{}}
	for _, f := range files {
		root.add(strings.Split(strings.TrimSuffix(f.Path, "/"), "/"), strings.HasSuffix(f.Path, "/"), f.Digest)
	}
	var out []FileSum
	root.emit("", d, &out)
	return sortedFiles(out)
}

// dirNode is one path element of a file list: a leaf (an entry of its own),
// a directory of children, or both (a directory's own entry and what is
// below it). A folded entry is a directory whose digest is known but whose
// children are not.
type dirNode struct {
	leaf     string // the entry's own digest, "" if none
	folded   string // the digest of a folded directory, "" if not folded
	children map[string]*dirNode
}

func (n *dirNode) add(elems []string, folded bool, digest string) {
	if len(elems) == 0 {
		if folded {
			n.folded = digest
		} else {
			n.leaf = digest
		}
		return
	}
	c := n.children[elems[0]]
	if c == nil {
		c = &dirNode{children: map[string]*dirNode{}}
		n.children[elems[0]] = c
	}
	c.add(elems[1:], folded, digest)
}

// subtree is the Merkle digest of what lies below n.
func (n *dirNode) subtree() string {
	if n.folded != "" {
		return n.folded
	}
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		c := n.children[name]
		if c.leaf != "" {
			h.Write([]byte(strconv.Quote(name) + " " + c.leaf + "\n"))
		}
		if c.folded != "" || len(c.children) > 0 {
			h.Write([]byte(strconv.Quote(name) + "/ " + c.subtree() + "\n"))
		}
	}
	return ShortDigest(hex.EncodeToString(h.Sum(nil)))
}

// emit lists n's entries below prefix, folding at depth d.
func (n *dirNode) emit(prefix string, d int, out *[]FileSum) {
	for name, c := range n.children {
		p := name
		if prefix != "" {
			p = prefix + "/" + name
		}
		if c.leaf != "" {
			*out = append(*out, FileSum{Path: p, Digest: c.leaf})
		}
		if c.folded == "" && len(c.children) == 0 {
			continue
		}
		if depth(p) >= d {
			*out = append(*out, FileSum{Path: p + "/", Digest: c.subtree()})
			continue
		}
		c.emit(p, d, out)
	}
}

// DiffInputs compares the input digests of two records of one step: the
// names whose digests differ, those only cur has, and those only old has,
// each sorted.
func DiffInputs(old, cur []Input) (changed, added, removed []string) {
	was := make(map[string]string, len(old))
	for _, in := range old {
		was[in.Name] = in.Digest
	}
	for _, in := range cur {
		d, ok := was[in.Name]
		switch {
		case !ok:
			added = append(added, in.Name)
		case d != in.Digest:
			changed = append(changed, in.Name)
		}
		delete(was, in.Name)
	}
	for name := range was {
		removed = append(removed, name)
	}
	sort.Strings(changed)
	sort.Strings(added)
	sort.Strings(removed)
	return changed, added, removed
}
