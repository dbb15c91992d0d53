package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/kiln-build/kiln/internal/plan"
)

// pipesDir is where a RUN heredoc with a #! line is put and run from.
const pipesDir = "/dev/pipes/"

// run resolves a RUN instruction.
//
// Heredocs follow BuildKit. "RUN <<EOF" alone runs the body as the
// shell's script (SHELL + [body]); when the body starts with "#!" it is
// instead written to /dev/pipes/EOF (plan.Run.Files) and that file is run,
// so its interpreter is honoured. Any other form ("RUN <<EOF bash",
// "RUN cat <<A <<B", "RUN python3 - <<EOF") is given whole, bodies and
// delimiters included, to the shell, which feeds each body to the command
// on its stdin as a POSIX shell does.
func (p *planner) run(ctx context.Context, s *stage, st *state, c *instructions.RunCommand) (*plan.Run, error) {
	if slices.Contains(c.FlagsUsed, "device") {
		return nil, errors.New("RUN --device is not supported")
	}
	if instructions.GetSecurity(c) == instructions.SecurityInsecure {
		return nil, errors.New("RUN --security=insecure is not supported")
	}
	r := &plan.Run{
		Env:     st.env().list(),
		WorkDir: st.workdir(),
		User:    st.cfg.User,
		Network: p.opts.Network,
	}
	if n := instructions.GetNetwork(c); n != instructions.NetworkDefault {
		r.Network = n
	}

	args := c.CmdLine
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return nil, fmt.Errorf("parsing produced an invalid run command: %v", args)
		}
		if h := parser.MustParseHeredoc(args[0]); h != nil {
			f := c.Files[0]
			data := f.Data
			if f.Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				r.Files = append(r.Files, plan.InlineFile{Name: f.Name, Data: data})
				args = []string{pipesDir + f.Name}
			} else {
				args = []string{data}
			}
		} else {
			var b strings.Builder
			b.WriteString(args[0])
			for _, f := range c.Files {
				b.WriteByte('\n')
				b.WriteString(f.Data)
				b.WriteString(f.Name)
			}
			args = []string{b.String()}
		}
	}
	if c.PrependShell {
		args = st.withShell(args)
	}
	r.Args = slices.Clone(args)

	for _, m := range instructions.GetMounts(c) {
		pm, err := p.mount(ctx, s, st, m)
		if err != nil {
			return nil, err
		}
		r.Mounts = append(r.Mounts, pm)
	}
	return r, nil
}

// mount resolves one RUN --mount.
func (p *planner) mount(ctx context.Context, s *stage, st *state, m *instructions.Mount) (plan.Mount, error) {
	pm := plan.Mount{
		Type:     plan.MountType(m.Type),
		ReadOnly: m.ReadOnly,
		Required: m.Required,
		Mode:     -1,
		UID:      -1,
		GID:      -1,
		Size:     m.SizeLimit,
	}
	if m.Mode != nil {
		pm.Mode = int64(*m.Mode)
	}
	if m.UID != nil {
		pm.UID = int64(*m.UID)
	}
	if m.GID != nil {
		pm.GID = int64(*m.GID)
	}
	switch m.Type {
	case instructions.MountTypeSSH:
		return pm, errors.New("RUN --mount=type=ssh is not supported")
	case instructions.MountTypeSecret:
		return secretMount(pm, m)
	case instructions.MountTypeTmpfs:
		if m.From != "" || m.Source != "" {
			return pm, errors.New("a tmpfs mount takes no from or source")
		}
	case instructions.MountTypeCache:
		pm.ID = m.CacheID
		if pm.ID == "" {
			// BuildKit's default: the target as written, cleaned.
			pm.ID = path.Clean(m.Target)
		}
		pm.Sharing = string(m.CacheSharing)
		if pm.Sharing == "" {
			pm.Sharing = string(instructions.MountSharingShared)
		}
	}
	if m.Target == "" {
		return pm, fmt.Errorf("--mount=type=%s needs a target", m.Type)
	}
	pm.Target = m.Target
	if !path.IsAbs(pm.Target) {
		pm.Target = path.Join(st.workdir(), pm.Target)
	}
	pm.Target = path.Clean(pm.Target)
	if pm.Target == "/" {
		return pm, fmt.Errorf("invalid mount target %q", m.Target)
	}
	if m.Type == instructions.MountTypeTmpfs {
		return pm, nil
	}
	pm.Source = path.Join("/", m.Source)
	if m.From != "" {
		dep, ref, err := p.resolveFrom(s, m.From)
		if err != nil {
			return pm, fmt.Errorf("RUN --mount from=%s: %w", m.From, err)
		}
		switch {
		case dep == nil && ref == "":
			pm.FromContext, _, _ = p.namedContext(m.From)
		case dep != nil:
			if dep.out == nil {
				return pm, fmt.Errorf("cannot mount from stage %q to %q, stage needs to be defined before current command", m.From, m.Target)
			}
			pm.FromStage = dep.out
		default:
			img, err := p.resolveImage(ctx, 0, ref, s.platform)
			if err != nil {
				return pm, unwrapPos(err)
			}
			pm.FromImage = img
		}
	}
	return pm, nil
}

// secretMount fills in a secret mount: the ID defaults to the target's
// base name, the target to /run/secrets/<id> unless the secret goes to an
// environment variable.
func secretMount(pm plan.Mount, m *instructions.Mount) (plan.Mount, error) {
	pm.ID = m.CacheID
	if m.Source != "" {
		pm.ID = m.Source
	}
	if pm.ID == "" {
		if m.Target == "" {
			return pm, errors.New("a secret mount needs an id or a target")
		}
		pm.ID = path.Base(m.Target)
	}
	pm.Target = m.Target
	if m.Env != nil {
		pm.Env = *m.Env
		if pm.Env == "" {
			pm.Env = pm.ID
		}
	} else if pm.Target == "" {
		pm.Target = "/run/secrets/" + path.Base(pm.ID)
	}
	return pm, nil
}

// unwrapPos strips the position of an *Error made without a line, so that
// the caller's errAt can put the instruction's line on it.
func unwrapPos(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Pos.Line == 0 {
		return e.Err
	}
	return err
}
