package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/source"
)

// copyArgs is what COPY and ADD have in common, after expansion.
type copyArgs struct {
	add      bool
	from     string
	params   instructions.SourcesAndDest
	chown    string
	chmod    string
	link     bool
	excludes []string
	parents  bool
	// ADD flags kiln refuses.
	checksum   string
	keepGitDir bool
	unpack     bool
}

// copyStep resolves a COPY or ADD instruction.
func (p *planner) copyStep(ctx context.Context, s *stage, st *state, a copyArgs) (*plan.Copy, error) {
	inst := "COPY"
	if a.add {
		inst = "ADD"
	}
	switch {
	case len(a.excludes) > 0:
		return nil, fmt.Errorf("%s --exclude is not supported", inst)
	case a.parents:
		return nil, errors.New("COPY --parents is not supported")
	case a.checksum != "":
		return nil, errors.New("ADD --checksum is not supported")
	case a.keepGitDir:
		return nil, errors.New("ADD --keep-git-dir is not supported")
	case a.unpack:
		return nil, errors.New("ADD --unpack is not supported")
	}
	for _, src := range a.params.SourcePaths {
		if err := checkSource(a.add, src); err != nil {
			return nil, err
		}
	}
	// The solver applies --chmod with the same parser: a value it would
	// refuse is a Dockerfile error here.
	if _, err := source.ParseChmod(a.chmod); err != nil {
		return nil, err
	}
	if a.link && a.chown != "" && chownByName(a.chown) {
		return nil, fmt.Errorf("--chown=%s: user and group names can't be resolved when used with --link, use numeric uid[:gid] instead", a.chown)
	}
	c := &plan.Copy{
		Add:     a.add,
		Sources: slices.Clone(a.params.SourcePaths),
		Dest:    resolveDest(st.workdir(), a.params.DestPath),
		Chown:   a.chown,
		Chmod:   a.chmod,
		Link:    a.link,
		User:    st.cfg.User,
	}
	for _, sc := range a.params.SourceContents {
		c.Inline = append(c.Inline, plan.InlineFile{Name: sc.Path, Data: sc.Data})
	}
	if a.from != "" {
		dep, ref, err := p.resolveFrom(s, a.from)
		if err != nil {
			return nil, fmt.Errorf("COPY --from=%s: %w", a.from, err)
		}
		switch {
		case dep == nil && ref == "":
			c.FromContext, _, _ = p.namedContext(a.from)
		case dep != nil:
			if dep.out == nil {
				return nil, fmt.Errorf("cannot copy from stage %q, it needs to be defined before current stage %q", a.from, label(s))
			}
			c.FromStage = dep.out
		default:
			img, err := p.resolveImage(ctx, 0, ref, s.platform)
			if err != nil {
				return nil, unwrapPos(err)
			}
			c.FromImage = img
		}
	}
	return c, nil
}

// checkSource refuses remote sources: kiln copies from the context, a
// stage or an image only.
func checkSource(add bool, src string) error {
	// BuildKit's dfgitutil would say the same for these forms, but it
	// pulls in dependencies kiln does not otherwise need.
	isURL := strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://")
	isGit := strings.HasPrefix(src, "git://") || strings.HasPrefix(src, "git@") || strings.HasPrefix(src, "ssh://")
	switch {
	case !isURL && !isGit:
		return nil
	case !add:
		return fmt.Errorf("source can't be a URL for COPY: %s", src)
	case isGit:
		return fmt.Errorf("ADD from a URL is not supported: %s is a git repository", src)
	default:
		return fmt.Errorf("ADD from a URL is not supported: %s", src)
	}
}

// chownByName reports whether a --chown value names a user or group
// rather than giving numbers.
func chownByName(chown string) bool {
	u, g, _ := strings.Cut(chown, ":")
	for _, part := range []string{u, g} {
		if part == "" {
			continue
		}
		if _, err := strconv.ParseUint(part, 10, 32); err != nil {
			return true
		}
	}
	return false
}

// resolveDest makes a COPY destination absolute against the working
// directory, keeping a trailing "/" (or "/.") the user wrote, as BuildKit
// does: it decides whether Dest is a directory.
func resolveDest(wd, dest string) string {
	if dest == "" || dest == "." {
		dest = "./"
	}
	p := dest
	if !path.IsAbs(p) {
		p = path.Join(wd, p)
	} else {
		p = path.Clean(p)
	}
	switch {
	case strings.HasSuffix(dest, "/") && !strings.HasSuffix(p, "/"):
		p += "/"
	case strings.HasSuffix(dest, "/."):
		if p != "/" {
			p += "/"
		}
		p += "."
	}
	return p
}
