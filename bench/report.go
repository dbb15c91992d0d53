package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// maxGrowth is the target for the local cache: after edits that replace
// its big layers, the dir stays about the size of one build's cache.
const maxGrowth = 1.10

// The kinds of build the bench times, in report order.
const (
	kindCold    = "cold"
	kindWarm    = "warm"
	kindWarmOCI = "warm + oci"
	kindEdit    = "1 file edited"
)

var kinds = []string{kindCold, kindWarm, kindWarmOCI, kindEdit}

// projectResult is everything measured for one project.
type projectResult struct {
	name  string
	steps int
	// times holds the wall time of every build of each kind.
	times map[string][]time.Duration
	// sizes is the cache dir size after the first build of the series and
	// after each edited rebuild.
	sizes []int64
	// traffic holds, per kind and normalized cache source, what each
	// build's --metadata-file said.
	traffic map[string]map[string][]cacheStat
}

func newProjectResult(name string) *projectResult {
	return &projectResult{name: name, times: map[string][]time.Duration{}, traffic: map[string]map[string][]cacheStat{}}
}

// add records one build of the given kind; cacheDir is replaced by "C"
// in the cache sources so builds in different dirs line up.
func (r *projectResult) add(kind, cacheDir string, b buildResult) {
	r.times[kind] = append(r.times[kind], b.wall)
	if r.traffic[kind] == nil {
		r.traffic[kind] = map[string][]cacheStat{}
	}
	for _, c := range b.md.Summary.Caches {
		c.Source = normalizeSource(c.Source, cacheDir)
		r.traffic[kind][c.Source] = append(r.traffic[kind][c.Source], c)
	}
	r.steps = max(r.steps, b.md.Summary.Steps)
}

// growth is the last cache size of the series over the first, or 0 if the
// series is too short.
func (r *projectResult) growth() float64 {
	if len(r.sizes) < 2 {
		return 0
	}
	return ratio(float64(r.sizes[len(r.sizes)-1]), float64(r.sizes[0]))
}

// A check is one target the bench holds kiln to.
type check struct {
	project string
	ok      bool
	text    string
	// note: a miss is reported as NOTE, an expected limit rather than a
	// failure, and does not change the exit status.
	note bool
}

// missed reports whether c is a missed target (not a note).
func (c check) missed() bool { return !c.ok && !c.note }

// status is PASS, FAIL or NOTE.
func (c check) status() string {
	if !c.ok && c.note {
		return "NOTE"
	}
	return passFail(c.ok)
}

// median returns the middle value of xs (the mean of the two middle ones
// for an even count), or 0 for none. xs is not modified.
func median[T ~int | ~int64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return s[n/2-1] + (s[n/2]-s[n/2-1])/2
}

// medianStat returns the field-wise median of stats, which share a source.
func medianStat(stats []cacheStat) cacheStat {
	if len(stats) == 0 {
		return cacheStat{}
	}
	var hits []int
	var read, written []int64
	for _, s := range stats {
		hits = append(hits, s.Hits)
		read = append(read, s.BytesRead)
		written = append(written, s.BytesWritten)
	}
	return cacheStat{Source: stats[0].Source, Hits: median(hits), BytesRead: median(read), BytesWritten: median(written)}
}

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// normalizeSource replaces the cache dir in a cache source string by "C".
func normalizeSource(src, cacheDir string) string {
	if cacheDir == "" {
		return src
	}
	return strings.ReplaceAll(src, cacheDir, "C")
}

// fmtDuration prints seconds with about three significant digits.
func fmtDuration(d time.Duration) string {
	s := d.Seconds()
	switch {
	case s < 0.1:
		return fmt.Sprintf("%.3f s", s)
	case s < 10:
		return fmt.Sprintf("%.2f s", s)
	default:
		return fmt.Sprintf("%.1f s", s)
	}
}

// fmtBytes prints a byte count in decimal units, as kiln's summary does.
func fmtBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %cB", v, "kMGT"[i])
}

// fmtRatio prints a ratio as a multiplier.
func fmtRatio(x float64) string {
	if x >= 100 {
		return fmt.Sprintf("%.0f×", x)
	}
	return fmt.Sprintf("%.1f×", x)
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// markdownTable renders a GitHub table with padded columns; right marks
// the columns aligned right (numbers).
func markdownTable(header []string, right []bool, rows [][]string) string {
	width := make([]int, len(header))
	for _, row := range append([][]string{header}, rows...) {
		for i, cell := range row {
			width[i] = max(width[i], utf8.RuneCountInString(cell), 3)
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i, c := range cells {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i < len(right) && right[i] {
				fmt.Fprintf(&b, " %s%s |", pad, c)
			} else {
				fmt.Fprintf(&b, " %s%s |", c, pad)
			}
		}
		b.WriteString("\n")
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
		if i < len(right) && right[i] {
			sep[i] = sep[i][1:] + ":"
		}
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

// machine describes where the bench ran.
type machine struct {
	date    time.Time
	nproc   int
	cpu     string
	kernel  string
	fs      string // file system of the work dir
	kiln    string // `kiln version`
	runc    string // `runc --version`, first line
	runs    int
	edits   int
	elapsed time.Duration // wall time of the whole bench, if known
}

// writeReport prints the markdown report: the machine, then the time,
// cache size and cache traffic tables, then the registry section (if reg
// is not nil), then the targets.
func writeReport(w io.Writer, m machine, results []*projectResult, reg *registryReport, checks []check) {
	fmt.Fprintf(w, "## kiln bench\n\n")
	fmt.Fprintf(w, "- date: %s\n", m.date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- machine: nproc %d, %s, kernel %s, work dir on %s\n", m.nproc, m.cpu, m.kernel, m.fs)
	fmt.Fprintf(w, "- %s, %s\n", m.kiln, m.runc)
	fmt.Fprintf(w, "- runs: %d (medians shown); cache-size series: 1 build, then %d rebuilds each after editing one source file\n", m.runs, m.edits)
	if m.elapsed > 0 {
		fmt.Fprintf(w, "- bench wall time: %s\n", fmtDuration(m.elapsed.Round(time.Second)))
	}
	fmt.Fprintf(w, "\n### Build time (median)\n\n%s", timeTable(results))
	fmt.Fprintf(w, "\ncold: empty state dir and cache dir, `--cache-to type=local,dest=C,mode=max`. "+
		"warm: a new empty state dir, `--cache-from type=local,src=C --cache-to type=local,dest=C,mode=max`, same context. "+
		"warm + oci: the same with `-o type=oci,dest=F.tar`, which must read the layer bytes (from a copy of C as the cold build left it). "+
		"1 file edited: the series' rebuilds (median of %d), each in a new state dir.\n", m.edits)
	fmt.Fprintf(w, "\n### Local cache dir size (mode=max)\n\n%s", sizeTable(results))
	fmt.Fprintf(w, "\n### Cache traffic (--metadata-file kiln.summary, median)\n\n%s", trafficTable(results))
	writeRegistrySection(w, reg)
	fmt.Fprintf(w, "\n### Targets\n\n")
	for _, c := range checks {
		fmt.Fprintf(w, "- %s %s: %s\n", c.status(), c.project, c.text)
	}
}

func timeTable(results []*projectResult) string {
	var rows [][]string
	for _, r := range results {
		cold, warm := median(r.times[kindCold]), median(r.times[kindWarm])
		rows = append(rows, []string{
			r.name, fmt.Sprint(r.steps),
			fmtDuration(cold), fmtDuration(warm),
			fmtRatio(ratio(float64(cold), float64(warm))),
			fmtDuration(median(r.times[kindWarmOCI])),
			fmtDuration(median(r.times[kindEdit])),
		})
	}
	return markdownTable(
		[]string{"project", "steps", "cold", "warm", "cold/warm", "warm + oci", "1 file edited"},
		[]bool{false, true, true, true, true, true, true}, rows)
}

func sizeTable(results []*projectResult) string {
	var rows [][]string
	for _, r := range results {
		if len(r.sizes) == 0 {
			continue
		}
		g := r.growth()
		var steps []string
		for _, s := range r.sizes {
			steps = append(steps, fmt.Sprintf("%.1f", float64(s)/1e6))
		}
		rows = append(rows, []string{
			r.name, fmtBytes(r.sizes[0]), fmtBytes(r.sizes[len(r.sizes)-1]),
			fmt.Sprintf("%.2f %s", g, passFail(g <= maxGrowth)),
			strings.Join(steps, " → "),
		})
	}
	return markdownTable(
		[]string{"project", "after 1 build", "after the edits", fmt.Sprintf("growth (≤ %.2f)", maxGrowth), "series (MB)"},
		[]bool{false, true, true, true, false}, rows)
}

func trafficTable(results []*projectResult) string {
	var rows [][]string
	for _, r := range results {
		for _, kind := range kinds {
			srcs := r.traffic[kind]
			keys := make([]string, 0, len(srcs))
			for k := range srcs {
				keys = append(keys, k)
			}
			// --cache-from (src=) before --cache-to (dest=), as kiln lists them.
			slices.SortFunc(keys, func(a, b string) int {
				return cmp.Or(cmp.Compare(exportRank(a), exportRank(b)), strings.Compare(a, b))
			})
			for _, k := range keys {
				s := medianStat(srcs[k])
				rows = append(rows, []string{r.name, kind, "`" + k + "`", fmt.Sprint(s.Hits), fmtBytes(s.BytesRead), fmtBytes(s.BytesWritten)})
			}
		}
	}
	return markdownTable(
		[]string{"project", "build", "cache", "hits", "read", "written"},
		[]bool{false, false, false, true, true, true}, rows)
}

// exportRank orders cache sources: imports (and the local state) first,
// then exports.
func exportRank(source string) int {
	if strings.Contains(source, "dest=") {
		return 1
	}
	return 0
}
