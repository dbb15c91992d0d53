package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// BuildKit's progress as `buildctl build --progress rawjson` prints it on
// stderr: one client.SolveStatus a line, JSON. The bench declares the few
// fields it reads rather than importing buildkit's client package (only
// internal/dockerfile imports buildkit).

// bkStatus is one line of rawjson progress.
type bkStatus struct {
	Vertexes []bkVertex `json:"vertexes"`
	Logs     []bkLog    `json:"logs"`
}

// bkVertex is one record of a vertex: a vertex appears in several status
// lines as it starts, completes or fails, each time in full.
type bkVertex struct {
	Digest    string     `json:"digest"`
	Name      string     `json:"name"`
	Started   *time.Time `json:"started"`
	Completed *time.Time `json:"completed"`
	Cached    bool       `json:"cached"`
	Error     string     `json:"error"`
}

// bkLog is a chunk of a vertex's output (a RUN command's stdout or
// stderr); Data is base64 in the JSON, as []byte is.
type bkLog struct {
	Vertex string `json:"vertex"`
	Data   []byte `json:"data"`
}

// bkRunRE matches the name BuildKit's Dockerfile frontend gives a RUN
// step's vertex: "[2/7] RUN sh gen.sh", "[stage-0 3/5] RUN ...",
// "[linux/amd64 build 2/4] RUN ...". "[internal] load ..." and the
// exporting and cache vertices do not match.
var bkRunRE = regexp.MustCompile(`^\[[^\]]*\b\d+/\d+\] RUN `)

// parseStatus decodes line if it is a rawjson status line; ok is false for
// a line that is not one (buildctl's own messages, such as "error: ...").
// err is set for a line that looks like one and does not decode.
func parseStatus(line string) (s bkStatus, ok bool, err error) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "{") {
		return bkStatus{}, false, nil
	}
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		return bkStatus{}, false, err
	}
	return s, true, nil
}

// buildkitRunTime adds up how long BuildKit's RUN steps took in the
// rawjson progress out: for every RUN vertex, completed − started of the
// last record that has both. BuildKit starts a vertex's clock before it
// sets up the step's mounts and stops it after it has committed the
// step's snapshot, so the figure holds a little more than the command's
// run. A RUN answered from the cache is left out, as kiln's runExecTime
// leaves out cached steps. It is -1 when out holds no status line, a
// status line does not decode, or a RUN vertex never completed (the
// format changed: better no figure than a wrong one).
func buildkitRunTime(out string) time.Duration {
	type vertex struct {
		name   string
		done   bool
		cached bool
		took   time.Duration
	}
	vertices := map[string]*vertex{}
	var order []string
	statuses := 0
	for line := range strings.Lines(out) {
		s, ok, err := parseStatus(line)
		if err != nil {
			return -1
		}
		if !ok {
			continue
		}
		statuses++
		for _, r := range s.Vertexes {
			v := vertices[r.Digest]
			if v == nil {
				v = &vertex{}
				vertices[r.Digest] = v
				order = append(order, r.Digest)
			}
			if r.Name != "" {
				v.name = r.Name
			}
			if r.Started != nil && r.Completed != nil {
				v.done, v.cached, v.took = true, r.Cached, r.Completed.Sub(*r.Started)
			}
		}
	}
	if statuses == 0 {
		return -1
	}
	var total time.Duration
	for _, d := range order {
		v := vertices[d]
		if !bkRunRE.MatchString(v.name) {
			continue
		}
		if !v.done || v.took < 0 {
			return -1
		}
		if !v.cached {
			total += v.took
		}
	}
	return total
}

// buildctlTail is the last n lines of buildctl's output, for a failure
// message. A rawjson status line becomes what plain progress would show of
// it that matters when a build fails: the commands' output and the
// vertices' errors (each error once). Other lines, such as buildctl's
// closing "error: ...", are kept as they are.
func buildctlTail(out string, n int) string {
	const maxTailLine = 1000
	var b strings.Builder
	seen := map[string]bool{}
	for line := range strings.Lines(out) {
		s, ok, err := parseStatus(line)
		if err != nil || !ok {
			// A status line cut short can be long: keep its start.
			line = strings.TrimRight(line, "\n")
			if len(line) > maxTailLine {
				line = strings.ToValidUTF8(line[:maxTailLine], "") + " …"
			}
			b.WriteString(line + "\n")
			continue
		}
		for _, l := range s.Logs {
			b.Write(l.Data)
			if len(l.Data) > 0 && l.Data[len(l.Data)-1] != '\n' {
				b.WriteByte('\n')
			}
		}
		for _, v := range s.Vertexes {
			if v.Error == "" || seen[v.Digest+"\x00"+v.Error] {
				continue
			}
			seen[v.Digest+"\x00"+v.Error] = true
			fmt.Fprintf(&b, "%s: %s\n", v.Name, v.Error)
		}
	}
	return tail(b.String(), n)
}
