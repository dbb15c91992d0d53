package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Key identifies the result of one build step: the SHA-256 of a canonical
// JSON document of everything that decides the step's result, and nothing
// else. The same inputs give the same key on any machine.
type Key string

// keyVersion is mixed into every key, so a change to what a key covers
// invalidates old records instead of serving them under a new meaning
// (v2: COPY and RUN results as BuildKit v0.34.2 makes them, issue 10).
const keyVersion = "kiln.key.v2"

// Hex returns the key's hex digest without the algorithm prefix, for file
// names and lock names.
func (k Key) Hex() string {
	if len(k) > 7 && k[:7] == "sha256:" {
		return string(k[7:])
	}
	return string(k)
}

// DefaultPlatform is the platform that enters keys as "": keys made
// before kiln built for other platforms were all linux/amd64, and stay
// valid.
const DefaultPlatform = "linux/amd64"

// ScratchKey is the key of the empty filesystem (FROM scratch) of a stage
// built for platform (os/arch[/variant], normalized). Every key of the
// stage descends from it, so the platform is part of every key; a registry
// base image's key has it through its platform-specific digest.
func ScratchKey(platform string) Key {
	if platform == DefaultPlatform {
		platform = ""
	}
	return keyOf("scratch", struct {
		Platform string `json:"platform,omitempty"`
	}{platform})
}

// ImageKey is the key of a registry base image: its platform-specific
// manifest digest decides everything.
func ImageKey(manifestDigest string) Key { return ImageKeyOn(manifestDigest, "") }

// ImageKeyOn is the key of FROM an image whose config names no platform,
// built for platform: its manifest is the same for every platform, so the
// platform is part of the key, or two platforms' RUN steps on it would
// share one result. DefaultPlatform and "" give ImageKey's key.
func ImageKeyOn(manifestDigest, platform string) Key {
	if platform == DefaultPlatform {
		platform = ""
	}
	return keyOf("image", struct {
		Digest   string `json:"digest"`
		Platform string `json:"platform,omitempty"`
	}{manifestDigest, platform})
}

// RunInput is everything that decides a RUN step's result. Secrets are
// never part of it.
type RunInput struct {
	// Parent is the key of the state the command runs on.
	Parent Key `json:"parent"`
	// Args is the argv, after SHELL and shell-form wrapping.
	Args []string `json:"args"`
	// Env is the effective environment (ENV and the build args in scope),
	// as NAME=value in order.
	Env []string `json:"env"`
	// WorkDir is the working directory.
	WorkDir string `json:"workdir"`
	// User is the USER the command runs as, as written.
	User string `json:"user"`
	// Network is default (the build's own namespace), host or none.
	Network string `json:"network"`
	// Mounts are the --mount flags, in order.
	Mounts []MountInput `json:"mounts,omitempty"`
	// Files are heredoc scripts run from /dev/pipes (RUN <<EOF with #!):
	// their text decides the result but is not in Args.
	Files []FileInput `json:"files,omitempty"`
	// SourceDateEpoch, when set, clamps the layer's times: a build with it
	// must not reuse a result made without it, or with another epoch.
	SourceDateEpoch *int64 `json:"sourceDateEpoch,omitempty"`
	// Hosts are the extra /etc/hosts entries (--add-host) as HOST:IP, in
	// order. Hosts, ShmSize and Ulimits enter the key only when set, so a
	// build without them keeps the keys it had before they existed.
	Hosts []string `json:"hosts,omitempty"`
	// ShmSize is the size of /dev/shm in bytes (--shm-size); 0 is the
	// default.
	ShmSize int64 `json:"shmSize,omitempty"`
	// Ulimits are the resource limits (--ulimit) as NAME=SOFT:HARD, in
	// order.
	Ulimits []string `json:"ulimits,omitempty"`
	// Mkdirs are the directories of earlier WORKDIRs the step makes first
	// (plan.Step.Mkdirs); none leaves the key as it was without them.
	Mkdirs []DirInput `json:"mkdirs,omitempty"`
}

// DirInput is a directory a WORKDIR names, made before a step.
type DirInput struct {
	// Dir is the absolute directory.
	Dir string `json:"dir"`
	// User is the USER the directories made are owned by, as written.
	User string `json:"user"`
}

// FileInput is an inline file a step uses.
type FileInput struct {
	// Name is the file's name where the step finds it.
	Name string `json:"name"`
	// Data is the file's text.
	Data string `json:"data"`
}

// MountInput is one RUN --mount as it enters a key. Content is the content
// digest of what a bind mount binds (empty for cache, tmpfs and secret
// mounts, whose contents are deliberately not part of the key).
type MountInput struct {
	// Type is bind, cache, tmpfs or secret.
	Type string `json:"type"`
	// Target is where the mount appears in the container.
	Target string `json:"target"`
	// Source is the path within what is mounted, as written.
	Source string `json:"source,omitempty"`
	// ID names a cache mount or a secret.
	ID string `json:"id,omitempty"`
	// ReadOnly is the mount's ro flag.
	ReadOnly bool `json:"readonly,omitempty"`
	// Content is the content digest of what a bind mount binds.
	Content string `json:"content,omitempty"`
	// Mode is the mode asked for (-1: not given).
	Mode int64 `json:"mode,omitempty"`
	// UID is the owner asked for (-1: not given).
	UID int64 `json:"uid,omitempty"`
	// GID is the group asked for (-1: not given).
	GID int64 `json:"gid,omitempty"`
	// Env is the variable a secret is exposed as (its value never is).
	Env string `json:"env,omitempty"`
	// Size is a tmpfs mount's size limit: a step may fail with one and
	// not without.
	Size int64 `json:"size,omitempty"`
}

// CopyInput is everything that decides a COPY or ADD step's result. Content
// is the content digest of the selected source files (paths, modes, link
// targets, contents; never mtimes), wherever they come from, so a rebuilt
// stage with identical output still hits downstream.
type CopyInput struct {
	// Parent is the key of the state the files are copied onto.
	Parent Key `json:"parent"`
	// Add is true for ADD (local archives are extracted).
	Add bool `json:"add,omitempty"`
	// Sources are the source paths and patterns, as written.
	Sources []string `json:"sources"`
	// Dest is the destination, as written.
	Dest string `json:"dest"`
	// Chown is --chown, as written.
	Chown string `json:"chown,omitempty"`
	// Chmod is --chmod, as written.
	Chmod string `json:"chmod,omitempty"`
	// Link is --link.
	Link bool `json:"link,omitempty"`
	// Content is the content digest of the selected files.
	Content string `json:"content"`
	// SourceDateEpoch is as for RunInput.
	SourceDateEpoch *int64 `json:"sourceDateEpoch,omitempty"`
	// Mkdirs are as for RunInput.
	Mkdirs []DirInput `json:"mkdirs,omitempty"`
}

// MkdirInput is everything that decides the result of a WORKDIR that makes
// its directory (plan.KindMkdir).
type MkdirInput struct {
	// Parent is the key of the state the directory is made on.
	Parent Key `json:"parent"`
	// Dir is the absolute directory.
	Dir string `json:"dir"`
	// User is the USER the missing directories are owned by, as written.
	User string `json:"user"`
	// SourceDateEpoch is as for RunInput.
	SourceDateEpoch *int64 `json:"sourceDateEpoch,omitempty"`
}

// MkdirKey returns the key of a WORKDIR that makes its directory.
func MkdirKey(in MkdirInput) Key { return keyOf("mkdir", in) }

// Inputs returns the digest of each input of a WORKDIR other than its
// parent, sorted by name: dir, user, sourceDateEpoch.
func (in MkdirInput) Inputs() []Input {
	out := []Input{
		{Name: "dir", Digest: digestOf(in.Dir)},
		{Name: "user", Digest: digestOf(in.User)},
	}
	if in.SourceDateEpoch != nil {
		out = append(out, Input{Name: "sourceDateEpoch", Digest: digestOf(*in.SourceDateEpoch)})
	}
	return sortInputs(out)
}

// RunKey returns the key of a RUN step.
func RunKey(in RunInput) Key {
	in.Args = nonNil(in.Args)
	in.Env = nonNil(in.Env)
	return keyOf("run", in)
}

// CopyKey returns the key of a COPY or ADD step.
func CopyKey(in CopyInput) Key {
	in.Sources = nonNil(in.Sources)
	return keyOf("copy", in)
}

// nonNil makes a nil and an empty slice encode alike.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// keyOf hashes kind and v as canonical JSON. encoding/json writes struct
// fields in declaration order and map keys sorted, which is canonical enough
// for the fixed input structs above; nil and empty slices are normalised by
// the callers' use of omitempty or explicit values.
func keyOf(kind string, v any) Key {
	b, err := json.Marshal(struct {
		Version string `json:"v"`
		Kind    string `json:"kind"`
		Input   any    `json:"input"`
	}{keyVersion, kind, v})
	if err != nil {
		// The inputs are plain strings, ints and slices of them.
		panic(fmt.Sprintf("cache: encoding key input: %v", err))
	}
	sum := sha256.Sum256(b)
	return Key("sha256:" + hex.EncodeToString(sum[:]))
}

// Inputs returns the digest of each input of a RUN other than its parent,
// sorted by name: args, env:NAME per variable, workdir, user, network,
// mount:TARGET per mount, file:NAME per inline script, sourceDateEpoch,
// addHost:HOST per host entry, shmSize and ulimit:NAME per limit when set,
// and mkdir:N per directory of an earlier WORKDIR.
func (in RunInput) Inputs() []Input {
	out := []Input{
		{Name: "args", Digest: digestOf(nonNil(in.Args))},
		{Name: "workdir", Digest: digestOf(in.WorkDir)},
		{Name: "user", Digest: digestOf(in.User)},
		{Name: "network", Digest: digestOf(in.Network)},
	}
	for _, e := range in.Env {
		name, _, _ := strings.Cut(e, "=")
		out = append(out, Input{Name: "env:" + name, Digest: digestOf(e)})
	}
	for _, m := range in.Mounts {
		out = append(out, Input{Name: "mount:" + m.Target, Digest: digestOf(m)})
	}
	for _, f := range in.Files {
		out = append(out, Input{Name: "file:" + f.Name, Digest: digestOf(f)})
	}
	if in.SourceDateEpoch != nil {
		out = append(out, Input{Name: "sourceDateEpoch", Digest: digestOf(*in.SourceDateEpoch)})
	}
	out = append(out, byName("addHost:", in.Hosts, ":")...)
	if in.ShmSize != 0 {
		out = append(out, Input{Name: "shmSize", Digest: digestOf(in.ShmSize)})
	}
	out = append(out, byName("ulimit:", in.Ulimits, "=")...)
	out = append(out, dirInputs(in.Mkdirs)...)
	return sortInputs(out)
}

// byName is one input per name of entries "NAME<sep>…" (a host given
// twice, for IPv4 and IPv6, is one input), its digest over that name's
// entries in order, so that input names stay unique.
func byName(prefix string, entries []string, sep string) []Input {
	var names []string
	of := map[string][]string{}
	for _, e := range entries {
		name, _, _ := strings.Cut(e, sep)
		if _, ok := of[name]; !ok {
			names = append(names, name)
		}
		of[name] = append(of[name], e)
	}
	out := make([]Input, 0, len(names))
	for _, n := range names {
		out = append(out, Input{Name: prefix + n, Digest: digestOf(of[n])})
	}
	return out
}

// Inputs returns the digest of each input of a COPY or ADD other than its
// parent, sorted by name: source:PATH per source, content (of the selected
// files), dest, chown, chmod, link, add, sourceDateEpoch, mkdir:N per
// directory of an earlier WORKDIR.
func (in CopyInput) Inputs() []Input {
	out := []Input{
		{Name: "content", Digest: digestOf(in.Content)},
		{Name: "dest", Digest: digestOf(in.Dest)},
		{Name: "chown", Digest: digestOf(in.Chown)},
		{Name: "chmod", Digest: digestOf(in.Chmod)},
		{Name: "link", Digest: digestOf(in.Link)},
		{Name: "add", Digest: digestOf(in.Add)},
	}
	for i, s := range in.Sources {
		out = append(out, Input{Name: fmt.Sprintf("source:%d:%s", i, s), Digest: digestOf(s)})
	}
	if in.SourceDateEpoch != nil {
		out = append(out, Input{Name: "sourceDateEpoch", Digest: digestOf(*in.SourceDateEpoch)})
	}
	out = append(out, dirInputs(in.Mkdirs)...)
	return sortInputs(out)
}

// dirInputs are the inputs of a step's WORKDIR directories, mkdir:N.
func dirInputs(ds []DirInput) []Input {
	var out []Input
	for i, d := range ds {
		out = append(out, Input{Name: fmt.Sprintf("mkdir:%d", i), Digest: digestOf(d)})
	}
	return out
}

func sortInputs(in []Input) []Input {
	sort.SliceStable(in, func(i, j int) bool { return in[i].Name < in[j].Name })
	return in
}
