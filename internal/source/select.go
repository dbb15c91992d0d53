package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// Match is one file or directory a COPY source names.
type Match struct {
	// Source is the source as written in the Dockerfile.
	Source string
	// Path is the real slash path relative to the root, symlinks resolved;
	// "" is the root itself.
	Path string
	// Name is the base name the match has under a destination directory:
	// the last element of the source as written (for a symlink, the link's
	// name, not its target's). It is "" for the root.
	Name string
	// Dir reports whether the match is a directory, whose contents are
	// copied.
	Dir bool
	// Wildcard reports whether Source is a glob.
	Wildcard bool
}

// Select resolves COPY sources to matches, in source order and, within a
// glob, in name order. A source is a path relative to the root (a leading
// "/" is ignored), a glob (Docker semantics: filepath.Match per path
// element), "." or a directory. It fails when a source's cleaned path climbs
// out of the root, when a source that is not a glob names nothing, or when
// following a symlink would leave the root. A glob that matches nothing
// adds no match, as in BuildKit (so a COPY of only such globs copies
// nothing).
func (t *Tree) Select(sources []string) ([]Match, error) {
	return t.SelectAs("COPY source", sources)
}

// SelectAs is Select with errors that call each source noun ("COPY
// source", "RUN --mount=type=bind source").
func (t *Tree) SelectAs(noun string, sources []string) ([]Match, error) {
	var out []Match
	for _, src := range sources {
		ms, err := t.selectOne(noun, src)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

func (t *Tree) selectOne(noun, src string) ([]Match, error) {
	clean := path.Clean(strings.TrimLeft(filepath.ToSlash(src), "/"))
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, &InputError{fmt.Errorf("%s %q is outside the build context", noun, src)}
	}
	if clean == "." {
		clean = ""
	}
	wild := hasMeta(clean)
	type cand struct{ real, name string }
	cands := []cand{{"", ""}}
	for _, elem := range splitPath(clean) {
		var next []cand
		for _, c := range cands {
			if !hasMeta(elem) {
				next = append(next, cand{path.Join(c.real, unescape(elem)), unescape(elem)})
				continue
			}
			ents, err := os.ReadDir(t.abs(c.real))
			if err != nil {
				continue // not a directory, or gone: no match below it
			}
			for _, e := range ents {
				ok, err := filepath.Match(elem, e.Name())
				if err != nil {
					return nil, fmt.Errorf("%s %q: %w", noun, src, err)
				}
				if ok {
					next = append(next, cand{path.Join(c.real, e.Name()), e.Name()})
				}
			}
		}
		// Resolve links now, so that the next element is looked up in
		// the real directory, and drop what does not exist.
		cands = cands[:0]
		for _, c := range next {
			if t.excluded(c.real) {
				// An excluded entry is looked into only when it is a real
				// directory a "!" pattern may bring files back from; an
				// excluded symlink is never followed.
				fi, err := os.Lstat(t.abs(c.real))
				if t.isHidden(c.real) || !t.mayIncludeUnder() || err != nil || !fi.IsDir() {
					continue
				}
			}
			r, err := t.resolve(c.real)
			if errors.Is(err, errEscape) {
				return nil, &InputError{fmt.Errorf("%s %q: %s: %w", noun, src, c.real, err)}
			}
			missing := errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
			switch {
			case err == nil:
			case missing && wild:
				continue
			case missing:
				return nil, &InputError{fmt.Errorf("%s %q: no such file or directory", noun, src)}
			default:
				return nil, fmt.Errorf("%s %q: %w", noun, src, err)
			}
			cands = append(cands, cand{r, c.name})
		}
	}
	var out []Match
	for _, c := range cands {
		fi, err := os.Stat(t.abs(c.real))
		if err != nil {
			continue
		}
		if t.excluded(c.real) && (t.isHidden(c.real) || !(fi.IsDir() && t.includesUnder(c.real))) {
			continue
		}
		out = append(out, Match{Source: src, Path: c.real, Name: c.name, Dir: fi.IsDir(), Wildcard: wild})
	}
	if len(out) == 0 && !wild {
		return nil, &InputError{fmt.Errorf("%s %q: no such file or directory", noun, src)}
	}
	return out, nil
}

// hasMeta reports whether p holds glob metacharacters (unescaped).
func hasMeta(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

// unescape removes glob escapes from a literal element ("a\*" names "a*").
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// includesUnder reports whether the excluded directory rel holds a file a
// "!" pattern brings back (the directory then exists as its parent).
func (t *Tree) includesUnder(rel string) bool {
	if !t.mayIncludeUnder() {
		return false
	}
	var ents []entry
	err := t.walkDir(context.Background(), rel, "", &ents, nil)
	return err == nil && len(ents) > 0
}
