package solve

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/exec"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/source"
)

// prepareCopy selects and hashes a COPY or ADD's sources and computes its
// key.
func (s *Solver) prepareCopy(ctx context.Context, step *plan.Step, cur *state, runs map[*plan.Stage]*stageRun) (*prepared, error) {
	c := step.Copy
	mode, err := parseChmod(c.Chmod)
	if err != nil {
		return nil, err
	}
	in := cache.CopyInput{
		Parent: cur.key, Add: c.Add, Sources: c.Sources, Dest: c.Dest,
		Chown: c.Chown, Chmod: c.Chmod, Link: c.Link, SourceDateEpoch: s.epoch(),
	}
	p := &prepared{release: func() {}}
	// The source tree is opened on first need: for COPY --from, a hit by
	// the quick key reads nothing.
	var tree *source.Tree
	var matches []source.Match
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
		content, err := tree.Digest(ctx, matches)
		if err != nil {
			return "", err
		}
		in := in
		in.Content = content
		p.inputs = in.Inputs()
		return cache.CopyKey(in), nil
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
		uid, gid := 0, 0
		if c.Chown != "" {
			u, g, _, err := exec.ResolveUser(root, c.Chown)
			if err != nil {
				return fmt.Errorf("resolving --chown=%s: %w", c.Chown, err)
			}
			uid, gid = int(u), int(g)
		}
		return tree.CopyInto(ctx, matches, root, source.CopyRequest{
			Dest: c.Dest, UID: uid, GID: gid, Chmod: mode, ExtractArchives: c.Add,
			KeepArchiveOwners: c.Add && c.Chown == "",
		})
	}
	if len(c.Inline) == 0 && c.FromStage == nil && c.FromImage == nil {
		// The context is cheap to hash: fail early on a missing source.
		if err := open(ctx); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// parseChmod reads --chmod; "" is nil (keep the sources' modes).
func parseChmod(chmod string) (*os.FileMode, error) {
	if chmod == "" {
		return nil, nil
	}
	m, err := strconv.ParseUint(chmod, 8, 32)
	if err != nil || m > 0o7777 {
		return nil, fmt.Errorf("invalid --chmod %q: want an octal mode such as 0755", chmod)
	}
	fm := os.FileMode(m&0o777) | unixModeBits(m)
	return &fm, nil
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

// unixModeBits maps setuid, setgid and sticky from a numeric mode to Go's
// FileMode bits.
func unixModeBits(m uint64) os.FileMode {
	var fm os.FileMode
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
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
