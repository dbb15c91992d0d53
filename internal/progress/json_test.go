package progress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestJSONGolden(t *testing.T) {
	t.Parallel()
	for _, s := range streams {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			j := NewJSON(&buf)
			for _, e := range s.events {
				j.Emit(e)
			}
			golden(t, "json/"+s.name+".golden", buf.Bytes())

			// Every line decodes back to the event emitted.
			var got []Event
			sc := bufio.NewScanner(&buf)
			for sc.Scan() {
				var e Event
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatalf("decoding line %q: %v", sc.Text(), err)
				}
				got = append(got, e)
			}
			if diff := cmp.Diff(s.events, got); diff != "" {
				t.Errorf("round trip differs (-emitted +decoded):\n%s", diff)
			}
		})
	}
}

func TestJSONKeepsMarkup(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	NewJSON(&buf).Emit(Event{Kind: Log, Step: 1, Line: "<a & b>"})
	if got, want := buf.String(), `{"kind":"log","step":1,"line":"<a & b>"}`+"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
