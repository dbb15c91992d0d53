package solve

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/layer"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
)

// threeCopies makes three layers, each step on the one before.
const threeCopies = `FROM scratch
COPY a.txt /a.txt
COPY b.txt /b.txt
COPY c.txt /c.txt
`

const (
	copyA = "COPY a.txt /a.txt"
	copyB = "COPY b.txt /b.txt"
	copyC = "COPY c.txt /c.txt"
)

// doneSink passes events on and closes a channel when a step has an
// event of kind.
type doneSink struct {
	next progress.Sink
	kind progress.Kind
	mu   sync.Mutex
	done map[string]chan struct{}
}

func newDoneSink(next progress.Sink, kind progress.Kind, texts ...string) *doneSink {
	d := &doneSink{next: next, kind: kind, done: map[string]chan struct{}{}}
	for _, t := range texts {
		d.done[t] = make(chan struct{})
	}
	return d
}

func (d *doneSink) Emit(e progress.Event) {
	d.next.Emit(e)
	if e.Kind != d.kind {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.done[e.Text]; ok {
		close(c)
		delete(d.done, e.Text)
	}
}

func (d *doneSink) of(text string) <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.done[text]; ok {
		return c
	}
	c := make(chan struct{})
	close(c)
	return c
}

// hookCompress makes b's solver compress through hook, which is given the
// layer's tar (the test layers are tiny) and may block or fail before the
// real compression.
func (b *build) hookCompress(hook func(ctx context.Context, tar []byte) error) {
	b.s.compress = func(ctx context.Context, dst io.Writer, src io.Reader, c layer.Compression, level int) (layer.Blob, error) {
		tar, err := io.ReadAll(src)
		if err != nil {
			return layer.Blob{}, err
		}
		if err := hook(ctx, tar); err != nil {
			return layer.Blob{}, err
		}
		return layer.Compress(ctx, dst, bytes.NewReader(tar), c, level)
	}
}

// holds reports whether the layer tar holds the file of content.
func holds(tar []byte, content string) bool { return bytes.Contains(tar, []byte(content)) }

// TestNextStepBeforeCompression: the step after one that ran starts (and
// here ends) while the layer of the first is still being compressed; the
// results carry the compressed digests all the same.
func TestNextStepBeforeCompression(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n", "b.txt": "beta\n", "c.txt": "gamma\n"})
	e := newEnv(t)
	var layersDone atomic.Int32
	b := e.newBuild(ctxDir, threeCopies, Options{LayerDone: func(_ *plan.Step, _ v1.Layer) { layersDone.Add(1) }})
	sink := newDoneSink(b.s.sink, progress.StepDone, copyB, copyC)
	b.s.sink = sink
	b.hookCompress(func(ctx context.Context, tar []byte) error {
		if !holds(tar, "alpha") {
			return nil
		}
		// The first layer's compression ends only once the two steps
		// on top of it are done.
		for _, text := range []string{copyB, copyC} {
			select {
			case <-sink.of(text):
			case <-time.After(10 * time.Second):
				return errors.New(text + " did not run while the layer below it was compressing")
			}
		}
		return nil
	})
	res := b.solve(t)
	if got := layersDone.Load(); got != 3 {
		t.Errorf("LayerDone calls: got %d, want 3", got)
	}
	checkResult(t, e, res, 3)
}

// checkResult checks res's n layers against the store's blobs and the
// records of the solve: in the store and in the export, each record's
// chain is the image's (digests, diff IDs, sizes), and the image is valid.
func checkResult(t *testing.T, e *env, res *Result, n int) {
	t.Helper()
	if len(res.Layers) != n {
		t.Fatalf("got %d layers, want %d", len(res.Layers), n)
	}
	var want []cache.Layer
	for i, l := range res.Layers {
		d, err := describe(l)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		if !e.st.HasBlob(d.Digest) {
			t.Errorf("layer %d: blob %s not in the store", i, d.Digest)
		}
		want = append(want, d)
	}
	recs := res.Records(cache.ModeMax)
	if len(recs) != n {
		t.Fatalf("got %d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if diff := cmp.Diff(want[:i+1], r.Layers); diff != "" {
			t.Errorf("exported record of %q: layers differ from the image's (-image +record):\n%s", r.CreatedBy, diff)
		}
		stored, err := e.st.Record(r.Key)
		if err != nil {
			t.Errorf("stored record of %q: %v", r.CreatedBy, err)
			continue
		}
		if diff := cmp.Diff(want[:i+1], stored.Layers); diff != "" {
			t.Errorf("stored record of %q: layers differ from the image's (-image +record):\n%s", r.CreatedBy, diff)
		}
	}
	img := empty.Image
	for _, l := range res.Layers {
		var err error
		if img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "test"}}); err != nil {
			t.Fatal(err)
		}
	}
	imagetest.Check(t, img)
}

// TestCompressionErrorFailsStep: a layer whose compression fails in the
// background fails the solve with an error naming its step, and leaves no
// record of that step.
func TestCompressionErrorFailsStep(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n", "b.txt": "beta\n", "c.txt": "gamma\n"})
	e := newEnv(t)
	b := e.newBuild(ctxDir, threeCopies, Options{})
	boom := errors.New("disk on fire")
	b.hookCompress(func(ctx context.Context, tar []byte) error {
		if holds(tar, "beta") {
			return boom
		}
		return nil
	})
	_, err := b.s.Solve(context.Background(), b.graph)
	var se *StepError
	if !errors.As(err, &se) || !errors.Is(err, boom) {
		t.Fatalf("Solve: got %v, want a *StepError wrapping %v", err, boom)
	}
	if se.Step == nil || se.Step.Text != copyB {
		t.Errorf("StepError names %v, want %q", se.Step, copyB)
	}
	if !strings.Contains(err.Error(), copyB) {
		t.Errorf("error %q does not name %q", err, copyB)
	}
	// The step is reported failed after its done event; a step still
	// running then is cancelled (and reported so), as when a stage fails.
	reported := false
	for _, ev := range b.events.Events() {
		switch {
		case ev.Kind != progress.StepFailed:
		case ev.Text == copyB && strings.Contains(ev.Err, boom.Error()):
			reported = true
		case ev.Text == copyB || !strings.Contains(ev.Err, context.Canceled.Error()):
			t.Errorf("unexpected failure of %q: %s", ev.Text, ev.Err)
		}
	}
	if !reported {
		t.Errorf("no failed event of %q with %q", copyB, boom)
	}
	if st, _, _ := b.s.SoFar(); st.Ran > 2 {
		t.Errorf("SoFar: %+v, want the failed step not counted", st)
	}
	// The failed layer left no record: a second build runs its step and
	// the one on top of it again (the first's record may be stored or
	// not, depending on when the failure cancelled it).
	if ran := e.rebuild(t, ctxDir, threeCopies); !slices.Contains(ran, copyB) || !slices.Contains(ran, copyC) {
		t.Errorf("second build ran %q, want %q and %q among them", ran, copyB, copyC)
	}
}

// rebuild solves df again on e, with a new solver, and returns the steps
// it ran (the ones that found no record).
func (e *env) rebuild(t *testing.T, ctxDir, df string) []string {
	t.Helper()
	res, b := e.solveOnce(ctxDir, df, Options{})
	checkResult(t, e, res, len(res.Layers))
	return b.stepsBy(progress.StepDone)
}

// TestCancelStopsCompression: cancelling the solve's context stops a
// layer's compression in the background; the solve returns the context's
// error and stores neither that layer's blob nor its record.
func TestCancelStopsCompression(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n", "b.txt": "beta\n", "c.txt": "gamma\n"})
	e := newEnv(t)
	b := e.newBuild(ctxDir, threeCopies, Options{})
	sink := newDoneSink(b.s.sink, progress.StepDone, copyC)
	b.s.sink = sink
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan struct{})
	b.hookCompress(func(hctx context.Context, tar []byte) error {
		if !holds(tar, "alpha") {
			return nil
		}
		<-hctx.Done() // only cancel ends this compression
		close(stopped)
		return hctx.Err()
	})
	go func() {
		<-sink.of(copyC)
		cancel()
	}()
	done := make(chan error, 1)
	go func() {
		_, err := b.s.Solve(ctx, b.graph)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Solve: got %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Solve did not return after cancel")
	}
	select {
	case <-stopped:
	default:
		t.Error("the compression was not stopped by the cancel")
	}
	// Every record waits for the first layer, so none was stored.
	if ran := e.rebuild(t, ctxDir, threeCopies); !slices.Equal(ran, []string{copyA, copyB, copyC}) {
		t.Errorf("second build ran %q, want all three steps", ran)
	}
}

// TestSecondReadDiffers: a layer whose tar read for compression is not the
// tar its snapshot was committed under fails its step loudly, and no blob
// of it is stored.
func TestSecondReadDiffers(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n", "b.txt": "beta\n", "c.txt": "gamma\n"})
	e := newEnv(t)
	b := e.newBuild(ctxDir, "FROM scratch\n"+copyA+"\n", Options{})
	var blob atomic.Pointer[v1.Hash]
	b.s.compress = func(ctx context.Context, dst io.Writer, src io.Reader, c layer.Compression, level int) (layer.Blob, error) {
		// One byte more than the first read saw.
		bl, err := layer.Compress(ctx, dst, io.MultiReader(src, strings.NewReader("x")), c, level)
		blob.Store(&bl.Digest)
		return bl, err
	}
	_, err := b.s.Solve(context.Background(), b.graph)
	var se *StepError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "not to the diff ID") {
		t.Fatalf("Solve: got %v, want a *StepError about the diff ID", err)
	}
	if se.Step == nil || se.Step.Text != copyA {
		t.Errorf("StepError names %v, want %q", se.Step, copyA)
	}
	if h := blob.Load(); h == nil || e.st.HasBlob(*h) {
		t.Errorf("the blob of the differing tar was stored (or never written): %v", h)
	}
}

// TestFailedStepKeepsEarlierLayers: a step that fails while the layers
// below it are still compressing does not cancel them: they are stored
// and recorded, and the next build hits them.
func TestFailedStepKeepsEarlierLayers(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n"})
	const fails = `RUN ["/bin/busybox", "false"]`
	df := "FROM scratch\nCOPY busybox /bin/busybox\n" + copyA + "\n" + fails + "\n"
	e := newEnv(t)
	b := e.newBuild(ctxDir, df, Options{})
	sink := newDoneSink(b.s.sink, progress.StepFailed, fails)
	b.s.sink = sink
	b.hookCompress(func(ctx context.Context, tar []byte) error {
		if !holds(tar, "alpha") {
			return nil
		}
		select {
		case <-sink.of(fails):
			// Give the failed stage the time to return (and cancel
			// what it would cancel).
			time.Sleep(300 * time.Millisecond)
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("the RUN did not fail while the layer below it was compressing")
		}
	})
	_, err := b.s.Solve(context.Background(), b.graph)
	var se *StepError
	if !errors.As(err, &se) || se.Step == nil || se.Step.Text != fails {
		t.Fatalf("Solve: got %v, want the failure of %q", err, fails)
	}
	b2 := e.newBuild(ctxDir, df, Options{})
	if _, err := b2.s.Solve(context.Background(), b2.graph); err == nil {
		t.Fatal("second Solve: got nil error, want the RUN's failure")
	}
	if got, want := b2.stepsBy(progress.StepCached), []string{"COPY busybox /bin/busybox", copyA}; !slices.Equal(got, want) {
		t.Errorf("second build: cached %q, want %q", got, want)
	}
}
