package solve

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/source"
)

// This file explains cache misses. For a step that missed, explain finds
// the nearest earlier record of the same step, in the local store (through
// its record index, store.Related) and in every imported cache manifest,
// and compares what made the two keys:
//
//   - a step after a miss misses because of it ("parent step 4 missed");
//   - a record with the same parent is nearest; among several, one at the
//     same position in the Dockerfile (cache.StepID), then one with the
//     same instruction text, then the newest;
//   - failing that, a record at the same position on another parent: the
//     base image changed (Record.Base), or the steps before it did;
//   - with none at all, there is "no earlier record of this step".
//
// The comparison uses only the names and digests in cache.Record.Inputs
// and cache.Record.Files, so no value (of a build arg, an environment
// variable, a secret) can ever reach an explanation. Files come bounded
// (cache.BoundFiles): beyond cache.MaxFiles paths a COPY's files are
// compared by directory.

// Bounds of what an explanation lists.
const (
	// causeFiles is how many changed paths the one-line cause names;
	// the rest are counted ("+3").
	causeFiles = 2
	// missFiles is how many changed paths Miss.Files lists.
	missFiles = 20
	// causeText is how many characters of an instruction a cause shows.
	causeText = 60
	// slowest is how many executed steps Result.Slowest keeps.
	slowest = 5
)

// stepID is the identity of step without its contents: its position in
// the Dockerfile and, for a platform other than cache.DefaultPlatform, the
// platform (so that a miss on one platform is not explained against
// another's record; linux/amd64's identities are as before platforms).
func stepID(step *plan.Step) string {
	pos := slices.Index(step.Stage.Steps, step) + 1
	id := cache.StepID(step.Pos.File, step.Stage.Label(), pos)
	if p := plan.FormatPlatform(plan.NormalizePlatform(stagePlatform(step.Stage))); p != cache.DefaultPlatform {
		id += "@" + p
	}
	return id
}

// fileSums are a tree's per-path digests as a record keeps them.
func fileSums(files []source.File) []cache.FileSum {
	out := make([]cache.FileSum, len(files))
	for i, f := range files {
		out[i] = cache.FileSum{Path: f.Path, Digest: cache.ShortDigest(f.Digest)}
	}
	return cache.BoundFiles(out)
}

// related is an earlier record of a step and where it was found.
type related struct {
	rec     cache.Record
	against string
}

// explain says why step missed; keys are the keys it was looked up by.
func (s *Solver) explain(step *plan.Step, cur *state, p *prepared, keys []cache.Key) *progress.Miss {
	m := &progress.Miss{Step: step.Number, Stage: s.stageLabel(step.Stage), Text: step.Text}
	subject := shortText(step.Text)
	set := func(reason, subj, detail string) *progress.Miss {
		m.Reason, m.Cause = reason, subj+": "+detail
		return m
	}
	switch {
	case s.opts.NoCache:
		return set(progress.ReasonNoCache, subject, "cache disabled (--no-cache)")
	case s.noCacheStage(step) != "":
		return set(progress.ReasonNoCache, subject, fmt.Sprintf("cache disabled for stage %s (--no-cache-filter)", quoteName(step.Stage.Name)))
	case cur.missed > 0:
		m.ParentStep = cur.missed
		return set(progress.ReasonParent, subject, fmt.Sprintf("parent step %d missed", cur.missed))
	}
	id := stepID(step)
	cands := s.related(cur.key, id)
	for _, c := range cands {
		if slices.Contains(keys, c.rec.Key) {
			m.Against = c.against
			return set(progress.ReasonUnusable, subject, "a cached result exists but its layers could not be used")
		}
	}
	best, ok := nearest(cands, cur.key, id, step.Text)
	if !ok {
		return set(progress.ReasonNew, subject, "no earlier record of this step")
	}
	m.Against = best.against
	old := best.rec
	if old.Parent != cur.key {
		if cur.image != "" && old.Base != "" && old.Base != cur.image {
			m.Was, m.Now = old.Base, cur.image
			return set(progress.ReasonBase, "FROM", fmt.Sprintf("base image changed (%s → %s)", shortDigest(old.Base), shortDigest(cur.image)))
		}
		detail := "built on another parent than its last record (a step before it changed)"
		if parts := s.inputChanges(m, step, old, p); len(parts) > 0 {
			detail += "; " + strings.Join(parts, ", ")
		}
		return set(progress.ReasonParentChanged, subject, detail)
	}
	if instructionChanged(step, old, p.inputs) {
		return set(progress.ReasonInstruction, keyword(step.Text), "instruction changed")
	}
	parts := s.inputChanges(m, step, old, p)
	if len(parts) == 0 {
		parts = []string{"its inputs changed"}
	}
	return set(progress.ReasonInputs, subject, strings.Join(parts, ", "))
}

// related lists the earlier records of a step: by parent or identity, in
// the local store, then in every imported cache.
func (s *Solver) related(parent cache.Key, id string) []related {
	var out []related
	for _, r := range s.opts.Store.Related(parent, id) {
		if r.Parent != parent && s.ranHere(r.Key) {
			// This build made it, on another parent: the same step of
			// another platform (its base is another manifest), not an
			// earlier record of this one.
			continue
		}
		out = append(out, related{rec: *r, against: "local state"})
	}
	for _, c := range s.imports.byParent[parent] {
		out = append(out, related{rec: c.rec, against: c.src.Name})
	}
	for _, c := range s.imports.byStep[id] {
		if c.rec.Parent != parent { // else listed above
			out = append(out, related{rec: c.rec, against: c.src.Name})
		}
	}
	return out
}

// nearest picks the record to compare with (see the file comment): it
// must share the parent or the position; ties go to the newest.
func nearest(cands []related, parent cache.Key, id, text string) (related, bool) {
	score := func(r cache.Record) int {
		n := 0
		if r.Parent == parent {
			n += 4
		}
		if r.Step == id {
			n += 2
		}
		if r.CreatedBy == text {
			n++
		}
		return n
	}
	var best related
	bestScore := -1
	for _, c := range cands {
		sc := score(c.rec)
		if sc < 2 {
			continue // neither the same parent nor the same position
		}
		if sc > bestScore || (sc == bestScore && c.rec.Created.After(best.rec.Created)) {
			best, bestScore = c, sc
		}
	}
	return best, bestScore >= 0
}

// instructionChanged reports whether the instruction itself differs from
// old's: its text, its kind, or what its text expands to.
func instructionChanged(step *plan.Step, old cache.Record, cur []cache.Input) bool {
	if old.CreatedBy != "" && old.CreatedBy != step.Text {
		return true
	}
	if len(old.Inputs) == 0 {
		return false // an earlier kiln's record: nothing to tell by
	}
	has := func(ins []cache.Input, name string) bool {
		return slices.ContainsFunc(ins, func(in cache.Input) bool { return in.Name == name })
	}
	// RUN has args, COPY and ADD have content.
	return has(old.Inputs, "args") != has(cur, "args")
}

// inputChanges names, in words, each input that differs between old and
// p, and fills m's Inputs and Files.
func (s *Solver) inputChanges(m *progress.Miss, step *plan.Step, old cache.Record, p *prepared) []string {
	if len(old.Inputs) == 0 {
		return nil
	}
	changed, added, removed := cache.DiffInputs(old.Inputs, p.inputs)
	configEnv := map[string]bool{}
	for _, e := range step.Config.Env() {
		name, _, _ := strings.Cut(e, "=")
		configEnv[name] = true
	}
	var parts []string
	instruction := false
	describe := func(names []string, verb string) {
		// An earlier WORKDIR's directory last: the step's own WORKDIR,
		// when it changed too, has said it.
		names = slices.Clone(names)
		slices.SortStableFunc(names, func(a, b string) int {
			return boolInt(strings.HasPrefix(a, "mkdir:")) - boolInt(strings.HasPrefix(b, "mkdir:"))
		})
		for _, name := range names {
			what, label := describeInput(name, configEnv)
			switch what {
			case "":
				instruction = true
				continue
			case "content":
				m.Inputs = append(m.Inputs, "content")
				parts = append(parts, filesChange(m, old.Files, p.files))
				continue
			}
			m.Inputs = append(m.Inputs, label)
			if part := what + " " + verb; !slices.Contains(parts, part) {
				parts = append(parts, part)
			}
		}
	}
	describe(changed, "changed")
	describe(added, "added")
	describe(removed, "removed")
	if instruction {
		parts = append([]string{"instruction changed after expansion"}, parts...)
	}
	return parts
}

// describeInput turns an input name into words and a Miss.Inputs label;
// "" for inputs that are part of the instruction as written.
func describeInput(name string, configEnv map[string]bool) (what, label string) {
	kind, rest, _ := strings.Cut(name, ":")
	switch kind {
	case "env":
		if configEnv[rest] {
			return "env " + quoteName(rest), name
		}
		return "build arg " + quoteName(rest), "arg:" + rest
	case "mount":
		return "mount " + quoteName(rest), name
	case "file":
		return "heredoc " + quoteName(rest), name
	case "workdir":
		return "WORKDIR", name
	case "mkdir":
		return "WORKDIR", name // a directory an earlier WORKDIR makes
	case "user":
		return "USER", name
	case "network":
		return "network", name
	case "sourceDateEpoch":
		return "SOURCE_DATE_EPOCH", name
	case "addHost":
		return "--add-host " + quoteName(rest), name
	case "shmSize":
		return "--shm-size", name
	case "ulimit":
		return "--ulimit " + quoteName(rest), name
	case "content":
		return "content", name
	case "args":
		return "command", name // the same text, another SHELL
	}
	return "", name // source:, dest, chown, chmod, link, add
}

// filesChange is "3 files changed: src/a.go, src/b.go, +1", and fills m's
// Files.
func filesChange(m *progress.Miss, old, cur []cache.FileSum) string {
	changed, ok := cache.ChangedFiles(old, cur)
	if !ok || len(changed) == 0 {
		return "source files changed"
	}
	m.FilesChanged = len(changed)
	for _, f := range changed[:min(len(changed), missFiles)] {
		m.Files = append(m.Files, quoteName(f))
	}
	noun := "files"
	if len(changed) == 1 {
		noun = "file"
	}
	names := m.Files[:min(len(m.Files), causeFiles)]
	out := fmt.Sprintf("%d %s changed: %s", len(changed), noun, strings.Join(names, ", "))
	if more := len(changed) - len(names); more > 0 {
		out += ", +" + strconv.Itoa(more)
	}
	return out
}

// quoteName quotes a name only if it holds characters that could break a
// line or a log (a file named with a newline stays one line).
func quoteName(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return strconv.Quote(s)
		}
	}
	return s
}

// shortText is an instruction cut for a one-line cause, on one line.
func shortText(t string) string {
	t = strings.Join(strings.Fields(t), " ")
	if utf8.RuneCountInString(t) <= causeText {
		return t
	}
	r := []rune(t)
	return string(r[:causeText-1]) + "…"
}

// keyword is the instruction's first word: RUN, COPY or ADD.
func keyword(t string) string {
	if f := strings.Fields(t); len(f) > 0 {
		return strings.ToUpper(f[0])
	}
	return t
}

// shortDigest is "sha256:" and the first 12 hex digits, then "…".
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12] + "…"
}

// noteMiss keeps m for the result.
func (s *Solver) noteMiss(m *progress.Miss) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.misses = append(s.misses, *m)
}

// noteTime keeps the run time of an executed step for the result.
func (s *Solver) noteTime(ev progress.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.times = append(s.times, progress.StepTime{Step: ev.Step, Stage: ev.Stage, Text: ev.Text, Duration: ev.Duration})
}

// sortedMisses are the misses in step order.
func (s *Solver) sortedMisses() []progress.Miss {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.misses)
	slices.SortFunc(out, func(a, b progress.Miss) int { return a.Step - b.Step })
	return out
}

// slowestSteps are the executed steps that took longest, longest first.
func (s *Solver) slowestSteps() []progress.StepTime {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.times)
	slices.SortStableFunc(out, func(a, b progress.StepTime) int {
		switch {
		case a.Duration > b.Duration:
			return -1
		case a.Duration < b.Duration:
			return 1
		}
		return a.Step - b.Step
	})
	return out[:min(len(out), slowest)]
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
