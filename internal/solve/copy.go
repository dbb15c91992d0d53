package solve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/exec"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/source"
)

// prepareCopy selects and hashes a COPY or ADD's sources and computes its
// key.
func (s *Solver) prepareCopy(ctx context.Context, step *plan.Step, cur *state, runs map[*plan.Stage]*stageRun) (*prepared, error) {
	c := step.Copy
	mode, err := source.ParseChmod(c.Chmod)
	if err != nil {
		return nil, err
	}
	in := cache.CopyInput{
		Parent: cur.key, Add: c.Add, Sources: c.Sources, Dest: c.Dest,
		Chown: c.Chown, Chmod: c.Chmod, Link: c.Link, SourceDateEpoch: s.epoch(),
		Mkdirs: dirInputs(step.Mkdirs),
	}
	p := &prepared{release: func() {}}
	// The source tree is opened on first need: for COPY --from, a hit by
	// the quick key reads nothing.
	var tree *source.Tree
	var matches []source.Match
	// keyed is the content digest the key was made from, and listing what
	// it covered, path by path: the record's per-path digests, and what a
	// digest after the copy is checked against (sameSources).
	var keyed string
	var listing *source.Listing
	open := func(ctx context.Context) error {
		if tree != nil {
			return nil
		}
		var rel func()
		var err error
		sources := c.Sources
		if len(c.Inline) > 0 {
			tree, rel, sources, err = s.inlineTree(c.Inline)
		} else {
			tree, _, rel, err = s.sourceTree(ctx, c.FromStage, c.FromImage, c.FromContext, runs)
		}
		if err != nil {
			return err
		}
		p.release = rel
		matches, err = tree.Select(sources)
		return err
	}
	p.key = func(ctx context.Context) (cache.Key, error) {
		if err := open(ctx); err != nil {
			return "", err
		}
		content, l, err := tree.KeyListing(ctx, matches)
		if err != nil {
			return "", err
		}
		keyed, listing = content, l
		in := in
		in.Content = content
		p.inputs = in.Inputs()
		return cache.CopyKey(in), nil
	}
	// Per-path digests hash each path's digest line of the key's listing
	// (solveStep makes the key first): only a step that misses pays it.
	p.fileSums = func(context.Context) ([]cache.FileSum, error) {
		if listing == nil {
			return nil, nil
		}
		return fileSums(listing.Files()), nil
	}
	if from := s.sourceKey(ctx, c, runs); from != "" {
		q := in
		q.Content = "from:" + string(from)
		p.quick = cache.CopyKey(q)
	}
	p.exec = func(ctx context.Context, root string) error {
		if err := open(ctx); err != nil {
			return err
		}
		// COPY from the context or a heredoc makes files 0:0; from a
		// stage or an image it keeps their owners, as BuildKit does.
		uid, gid := 0, 0
		if c.FromStage != nil || c.FromImage != nil {
			uid, gid = -1, -1
		}
		if c.Chown != "" {
			u, g, err := chownIDs(root, c.Chown)
			if err != nil {
				// A user or group the destination does not have is the
				// Dockerfile's to fix (exit 2), as BuildKit refuses it.
				return &source.InputError{Err: fmt.Errorf("resolving --chown=%s: %w", c.Chown, err)}
			}
			uid, gid = int(u), int(g)
		}
		err := tree.CopyInto(ctx, matches, root, source.CopyRequest{
			Dest: c.Dest, UID: uid, GID: gid, Chmod: mode, ExtractArchives: c.Add,
			KeepArchiveOwners: c.Add && c.Chown == "",
			// BuildKit's --link layer holds every parent of the
			// destination afresh, unless --chmod is given.
			ResetParents: c.Link && c.Chmod == "",
		})
		if err != nil {
			return err
		}
		if fromDir(c) {
			return sameSources(ctx, tree, matches, keyed, listing)
		}
		return nil
	}
	if len(c.Inline) == 0 && c.FromStage == nil && c.FromImage == nil {
		// The context is cheap to hash: fail early on a missing source.
		if err := open(ctx); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// errSourcesChanged is a step's context sources that changed between the
// digest its cache key was made from and their copy.
var errSourcesChanged = errors.New("changed while the build ran, after its digest made the step's cache key: run the build again (or leave it out with .dockerignore if it changes on its own)")

// sourceChanged is errSourcesChanged naming the first path that changed.
type sourceChanged struct{ path string }

func (e *sourceChanged) Error() string { return e.path + " " + errSourcesChanged.Error() }

func (e *sourceChanged) Is(target error) bool { return target == errSourcesChanged }

// fromDir reports whether c copies from a directory that may change while
// the build runs: the context or a named one, not a stage, an image or a
// heredoc.
func fromDir(c *plan.Copy) bool {
	return c.FromStage == nil && c.FromImage == nil && len(c.Inline) == 0
}

// sameSources digests matches again after their copy (their stats, and the
// bytes of files whose stat changed) and fails when the digest is not
// keyed, the one the step's key was made from (was is its listing): the
// copy may then hold what the key does not describe, which would be cached
// under it. The error names the first path that changed. A file only
// touched, or linked elsewhere, digests as before and passes.
func sameSources(ctx context.Context, tree *source.Tree, matches []source.Match, keyed string, was *source.Listing) error {
	if keyed == "" || was == nil {
		return nil // no key was made from this tree (a quick-key hit does not copy)
	}
	d, now, err := tree.DigestListing(ctx, matches)
	if err != nil {
		return err
	}
	if d == keyed {
		return nil
	}
	path := was.FirstChange(now)
	if path == "" {
		path = "a source" // the same lines in another order: not expected
	}
	return &sourceChanged{path: path}
}

// chownIDs resolves a --chown value against the destination's passwd and
// group files as BuildKit does: a numeric user alone is also the group
// ("1001" is 1001:1001), a name alone takes its passwd group, and an
// empty user (":group") is root.
func chownIDs(root, chown string) (uid, gid uint32, err error) {
	user, group, hasGroup := strings.Cut(chown, ":")
	if user == "" && hasGroup {
		user = "0"
	}
	if n, err := strconv.ParseUint(user, 10, 32); err == nil && !hasGroup {
		return uint32(n), uint32(n), nil
	}
	spec := user
	if hasGroup {
		spec += ":" + group
	}
	uid, gid, _, err = exec.ResolveUser(root, spec)
	return uid, gid, err
}

// sourceKey is the key of a COPY's source stage or image, "" for the
// context and heredocs.
func (s *Solver) sourceKey(ctx context.Context, c *plan.Copy, runs map[*plan.Stage]*stageRun) cache.Key {
	switch {
	case c.FromStage != nil:
		st, err := waitStage(ctx, runs, c.FromStage)
		if err != nil {
			return ""
		}
		return st.key
	case c.FromImage != nil:
		return cache.ImageKey(c.FromImage.Digest.String())
	}
	return ""
}

// inlineTree writes heredoc sources to a private directory and returns it
// as a source tree, with the source names to select.
func (s *Solver) inlineTree(files []plan.InlineFile) (*source.Tree, func(), []string, error) {
	dir, err := s.opts.Store.TempDir("h")
	if err != nil {
		return nil, nil, nil, err
	}
	var names []string
	for _, f := range files {
		name := filepath.Base(filepath.Clean("/" + f.Name))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(f.Data), 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, nil, nil, fmt.Errorf("writing heredoc %s: %w", f.Name, err)
		}
		names = append(names, name)
	}
	tree, err := source.Open(dir, source.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	return tree, func() { tree.Close(); os.RemoveAll(dir) }, names, nil
}
