package plan

import (
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Graph is a Dockerfile resolved for one target.
type Graph struct {
	// Stages holds every stage the target needs, in Dockerfile order, so a
	// stage always comes after the stages it depends on. Stages the target
	// does not need are left out.
	Stages []*Stage
	// Target is the stage whose result is the image; it is the last element
	// of Stages.
	Target *Stage
	// Steps is the number of filesystem and config steps in all of Stages,
	// for progress numbering ("[3/9]").
	Steps int
	// UnusedArgs are the --build-arg names that no ARG in the global scope
	// or in Stages declares, sorted; the caller may warn about them.
	UnusedArgs []string
	// Platform is the target platform the graph was planned for
	// (TARGETPLATFORM), normalized.
	Platform v1.Platform
}

// Pos is a place in a Dockerfile, for error messages.
type Pos struct {
	// File is the Dockerfile's name as errors show it (the caller's
	// dockerfile.Options.File, "Dockerfile" by default).
	File string
	// Line is the 1-based line number; 0 means the position names the
	// file only (an unknown --target, for example).
	Line int
}

// Stage is one FROM section.
type Stage struct {
	// Index is the stage's position among all stages of the Dockerfile
	// (0-based), as COPY --from=N counts them.
	Index int
	// Name is the AS name, or "" for an unnamed stage.
	Name string
	// Pos is the stage's FROM line.
	Pos Pos
	// Base is what the stage starts from.
	Base Base
	// Platform is the platform the stage is built for, normalized: FROM
	// --platform when given, else the base stage's, else the graph's
	// target platform. Its image's config carries it, its base image is
	// the manifest for it, and its RUN steps execute for it (under
	// emulation when it is not the host's).
	Platform v1.Platform
	// Steps are the instructions after FROM, in order.
	Steps []*Step
	// Config is the image config when the stage ends (the last step's
	// Config, or the base's config when the stage has no steps).
	Config v1.Config
	// Author is the image author when the stage ends: the last MAINTAINER,
	// else the base stage's or base image's author.
	Author string
	// HealthStartInterval is HEALTHCHECK --start-interval of the
	// healthcheck in Config when the stage ends (v1.HealthConfig has no
	// field for it); 0 means none. A base stage's carries over; a base
	// image's is not read.
	HealthStartInterval time.Duration
}

// Label returns the name users know the stage by: its AS name or its index.
func (s *Stage) Label() string {
	if s.Name != "" {
		return s.Name
	}
	return "stage-" + strconv.Itoa(s.Index)
}

// Base is the start of a stage: exactly one of Scratch, Image or Stage.
type Base struct {
	// Scratch is true for FROM scratch: the stage starts with an empty
	// filesystem and no base config.
	Scratch bool
	// Image is the registry image the stage starts from (FROM IMAGE), or
	// nil.
	Image *Image
	// Stage is the earlier stage the stage starts from (FROM NAME, or FROM
	// N for the stage with Index N), or nil. It is in Graph.Stages before
	// the stage that uses it.
	Stage *Stage
}

// Image is a registry image used by FROM, COPY --from or RUN --mount from=,
// pinned to the platform-specific manifest digest it resolved to.
type Image struct {
	// Ref is the reference as written, after ARG expansion.
	Ref string
	// Digest is the resolved platform-specific manifest digest.
	Digest v1.Hash
	// Config is the image's config file.
	Config *v1.ConfigFile
	// Platform is the platform the manifest was resolved for.
	Platform v1.Platform
}

// Kind says what a step does.
type Kind int

const (
	// KindConfig changes only the image config (ENV, LABEL, USER, WORKDIR,
	// CMD, ENTRYPOINT, EXPOSE, VOLUME, HEALTHCHECK, STOPSIGNAL, ONBUILD,
	// SHELL, ARG). It produces no layer.
	KindConfig Kind = iota + 1
	// KindRun runs a command in a sandbox; its result is a layer.
	KindRun
	// KindCopy copies files from the context, a stage or an image (COPY and
	// ADD); its result is a layer.
	KindCopy
)

// Step is one instruction after FROM.
type Step struct {
	// Kind is what the step does; it decides which of Run and Copy is set
	// (neither for KindConfig). It is never the zero Kind.
	Kind Kind
	// Number is the step's 1-based position in the whole graph.
	Number int
	// Stage is the stage the step belongs to.
	Stage *Stage
	// Text is the instruction as written (continuations joined), for
	// progress and the image history's created_by.
	Text string
	// Pos is the instruction's first line. A step that comes from an
	// ONBUILD trigger of the stage's base has the FROM line.
	Pos Pos
	// Run is set for KindRun.
	Run *Run
	// Copy is set for KindCopy.
	Copy *Copy
	// Config is the image config after this step. For RUN and COPY it is
	// the config before the step, unchanged. Steps share what did not
	// change between them: treat it as read-only.
	Config Config
}

// Run is a RUN instruction, resolved.
type Run struct {
	// Args is the argv to execute: the exec form as written, or the shell
	// (SHELL, default /bin/sh -c) followed by the command. A heredoc RUN
	// (RUN <<EOF) runs its body as the script of the shell.
	Args []string
	// Env is the effective environment: the config's ENV plus the build
	// args in scope that ENV does not set, as KEY=VALUE in a stable order.
	Env []string
	// WorkDir is the absolute working directory ("/" when unset).
	WorkDir string
	// User is USER as written after expansion ("" means root).
	User string
	// Network is "default", "host", "none" or "" (the build's --network default).
	Network string
	// Mounts are the RUN --mount options.
	Mounts []Mount
	// Files are inline scripts the step needs, to be made available
	// read-only with mode 0755 in the directory /dev/pipes/ for this step
	// only (BuildKit's layout). A heredoc whose body starts with "#!"
	// (RUN <<EOF with a shebang line) is run as /dev/pipes/<name>.
	Files []InlineFile
}

// MountType is the type of a RUN --mount.
type MountType string

// Mount types.
const (
	MountBind   MountType = "bind"
	MountCache  MountType = "cache"
	MountSecret MountType = "secret"
	MountTmpfs  MountType = "tmpfs"
)

// Mount is one RUN --mount.
type Mount struct {
	// Type is the kind of mount; it decides which of the other fields
	// apply.
	Type MountType
	// Target is the absolute path in the container (for a secret, default
	// /run/secrets/<id>).
	Target string
	// Source is the path inside From (bind) or inside the cache (cache).
	Source string
	// FromStage, FromImage or FromContext name what a bind or cache mount
	// reads; none set means the build context for bind, an empty dir for
	// cache.
	FromStage *Stage
	// FromImage is set, instead of FromStage, when from= names a registry
	// image rather than a stage.
	FromImage *Image
	// FromContext is the name of a directory build context
	// (--build-context NAME=DIR).
	FromContext string
	// ID names a cache mount or a secret.
	ID string
	// ReadOnly makes a bind or cache mount read-only in the container. As
	// in BuildKit it defaults to true for bind mounts (rw clears it) and to
	// false for cache mounts (ro sets it). What a step writes to a
	// read-write bind mount is dropped when the step ends.
	ReadOnly bool
	// Sharing is shared, private or locked (cache mounts).
	Sharing string
	// Required makes a missing secret an error.
	Required bool
	// Env, for a secret, is the environment variable that receives it.
	Env string
	// Mode is the file mode of a cache mount's directory or a secret's
	// file; -1 if not given, which means BuildKit's defaults (0755 for a
	// cache directory, 0400 for a secret).
	Mode int64
	// UID and GID are the numeric owner of a cache mount's directory or a
	// secret's file; -1 if not given, which means 0 (root).
	UID, GID int64
	// Size is the size limit of a tmpfs mount in bytes; 0 means no limit.
	Size int64
}

// Copy is a COPY or ADD instruction, resolved.
type Copy struct {
	// Add is true for ADD: local tar archives among the sources are
	// extracted into Dest.
	Add bool
	// FromStage, FromImage or FromContext is where the sources are read;
	// none set means the build context.
	FromStage *Stage
	// FromImage is set, instead of FromStage, when --from names a registry
	// image rather than a stage.
	FromImage *Image
	// FromContext is the name of a directory build context
	// (--build-context NAME=DIR).
	FromContext string
	// Sources are the source paths or patterns as written after expansion,
	// relative to the source root.
	Sources []string
	// Inline holds heredoc sources (COPY <<EOF /dest).
	Inline []InlineFile
	// Dest is the absolute destination, resolved against WORKDIR, with a
	// trailing slash kept when the user wrote one.
	Dest string
	// Chown is --chown as written after expansion ("" keeps 0:0).
	Chown string
	// Chmod is --chmod as written ("" keeps the source modes).
	Chmod string
	// Link is --link.
	Link bool
	// User is the USER in effect, which resolves names in Chown.
	User string
}

// InlineFile is a file whose contents are written in the Dockerfile as a
// heredoc: a COPY source (Copy.Inline) or a RUN script (Run.Files).
type InlineFile struct {
	// Name is the heredoc's delimiter word ("EOF" for <<EOF), which is the
	// file's base name: in Dest for COPY, in /dev/pipes/ for RUN.
	Name string
	// Data is the file's whole contents: the heredoc's body, with leading
	// tabs stripped for <<-, and for COPY with ARG and ENV references
	// expanded unless the delimiter is quoted.
	Data string
}
