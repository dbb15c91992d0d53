package progress

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRecorder(t *testing.T) {
	t.Parallel()
	var r Recorder
	if got := r.Events(); len(got) != 0 {
		t.Fatalf("zero Recorder has %d events, want 0", len(got))
	}
	var wg sync.WaitGroup
	for n := range 8 {
		wg.Go(func() { r.Emit(Event{Kind: Info, Step: n}) })
	}
	wg.Wait()
	got := r.Events()
	if len(got) != 8 {
		t.Fatalf("got %d events, want 8", len(got))
	}
	got[0].Message = "changed"
	if r.Events()[0].Message != "" {
		t.Error("Events returned the Recorder's own slice, want a copy")
	}
}

func TestTee(t *testing.T) {
	t.Parallel()
	events := []Event{{Kind: Info, Message: "a"}, {Kind: Warning, Message: "b"}}
	tests := []struct {
		name  string
		sinks int
		nils  int
	}{
		{"none", 0, 0},
		{"only nil", 0, 2},
		{"one", 1, 0},
		{"one and nil", 1, 1},
		{"three", 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var args []Sink
			var recs []*Recorder
			for range tt.nils {
				args = append(args, nil)
			}
			for range tt.sinks {
				r := &Recorder{}
				recs = append(recs, r)
				args = append(args, r)
			}
			s := Tee(args...)
			for _, e := range events {
				s.Emit(e)
			}
			for i, r := range recs {
				if diff := cmp.Diff(events, r.Events()); diff != "" {
					t.Errorf("sink %d (-want +got):\n%s", i, diff)
				}
			}
			if tt.sinks == 1 && s != Sink(recs[0]) {
				t.Errorf("Tee of one sink = %T, want the sink itself", s)
			}
		})
	}
}

func TestDiscard(t *testing.T) {
	t.Parallel()
	Discard().Emit(Event{Kind: Done, Summary: &Summary{}}) // must not panic
}
