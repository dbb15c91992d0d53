package progress

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"
)

// NewJSON returns a Sink that writes each event to w as one JSON object on
// its own line (JSON Lines), with the field names of Event's json tags and
// zero fields left out. Decoding a line into an Event gives back the event
// that was emitted. Every event is written, including kinds this version
// does not know.
//
// The Sink is safe for concurrent use; each event is one Write to w. Write
// errors are dropped.
func NewJSON(w io.Writer) Sink {
	return &jsonSink{w: w}
}

type jsonSink struct {
	mu  sync.Mutex
	w   io.Writer
	buf bytes.Buffer
}

// Emit writes e as one line, with one Write.
func (j *jsonSink) Emit(e Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf.Reset()
	enc := json.NewEncoder(&j.buf)
	enc.SetEscapeHTML(false) // log lines are read by people too: keep "<" as is
	if err := enc.Encode(e); err != nil {
		return // an Event has no field that fails to encode
	}
	_, _ = j.w.Write(j.buf.Bytes())
}
