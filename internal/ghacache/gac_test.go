package ghacache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	actionscache "github.com/tonistiigi/go-actions-cache"
)

// TestGoActionsCache proves the server with the client BuildKit and buildx
// use (github.com/tonistiigi/go-actions-cache), over v1 and v2: Save, a
// duplicate Save (os.ErrExist), Load by exact key and by prefix, full and
// ranged reads through its ReaderAt, and SaveMutable's numbered index
// writes (#1, #2, then Load("<base>#") gives #2).
func TestGoActionsCache(t *testing.T) {
	// go-actions-cache keeps its chunk size in a package variable; 1 MiB
	// makes the 3 MiB blob a multi-chunk v1 upload with parallel PATCHes.
	actionscache.UploadChunkSize = 1 << 20
	for _, v2 := range []bool{false, true} {
		name := "v1"
		if v2 {
			name = "v2"
		}
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			c, err := actionscache.New(ts.token, ts.URL+"/", v2, actionscache.Opt{Client: ts.client, Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			gacSaveLoad(t, c)
			gacRanged(t, c)
			gacMutable(t, c)
		})
	}
}

func gacSaveLoad(t *testing.T, c *actionscache.Cache) {
	ctx := context.Background()
	if ce, err := c.Load(ctx, "small-key"); err != nil || ce != nil {
		t.Fatalf("Load before Save: got %v, %v; want a miss", ce, err)
	}
	small := []byte("ten bytes!")
	if err := c.Save(ctx, "small-key", actionscache.NewBlob(small)); err != nil {
		t.Fatalf("Save: %v", err)
	}
	err := c.Save(ctx, "small-key", actionscache.NewBlob([]byte("other")))
	if !errors.Is(err, os.ErrExist) {
		t.Errorf("second Save of the same key: got %v, want os.ErrExist", err)
	}
	for _, key := range []string{"small-key", "small"} {
		ce, err := c.Load(ctx, key)
		if err != nil || ce == nil {
			t.Fatalf("Load(%q): got %v, %v", key, ce, err)
		}
		if ce.Key != "small-key" {
			t.Errorf("Load(%q) matched %q, want small-key", key, ce.Key)
		}
		var buf bytes.Buffer
		if err := ce.WriteTo(ctx, &buf); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		if !bytes.Equal(buf.Bytes(), small) {
			t.Errorf("Load(%q) gave %q, want %q", key, buf.Bytes(), small)
		}
	}
}

func gacRanged(t *testing.T, c *actionscache.Cache) {
	ctx := context.Background()
	data := randomBytes(3<<20+17, 1)
	if err := c.Save(ctx, "big-key", actionscache.NewBlob(data)); err != nil {
		t.Fatalf("Save of %d bytes: %v", len(data), err)
	}
	ce, err := c.Load(ctx, "big-key")
	if err != nil || ce == nil {
		t.Fatalf("Load: got %v, %v", ce, err)
	}
	for _, off := range []int64{1<<20 + 5, 0, 3 << 20} {
		ra := ce.Download(ctx)
		p := make([]byte, 17)
		n, err := ra.ReadAt(p, off)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("ReadAt(%d): %v", off, err)
		}
		if !bytes.Equal(p[:n], data[off:off+int64(n)]) || n != 17 {
			t.Errorf("ReadAt(%d): got %d bytes %x, want %x", off, n, p[:n], data[off:off+17])
		}
		ra.Close()
	}
	var buf bytes.Buffer
	if err := ce.WriteTo(ctx, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("WriteTo: got %d bytes (err %v), want the %d saved", buf.Len(), err, len(data))
	}
}

func gacMutable(t *testing.T, c *actionscache.Cache) {
	ctx := context.Background()
	base := "index-buildkit-1-f921bd05"
	var olds []string
	for _, v := range []string{"one", "two"} {
		err := c.SaveMutable(ctx, base, 15*time.Second, func(old *actionscache.Entry) (actionscache.Blob, error) {
			k := ""
			if old != nil {
				k = old.Key
			}
			olds = append(olds, k)
			return actionscache.NewBlob([]byte(v)), nil
		})
		if err != nil {
			t.Fatalf("SaveMutable(%s): %v", v, err)
		}
	}
	if len(olds) != 2 || olds[0] != "" || olds[1] != base+"#1" {
		t.Errorf("SaveMutable saw old entries %q, want [\"\" %s#1]", olds, base)
	}
	ce, err := c.Load(ctx, base+"#")
	if err != nil || ce == nil {
		t.Fatalf("Load(%s#): got %v, %v", base, ce, err)
	}
	var buf bytes.Buffer
	if err := ce.WriteTo(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	if ce.Key != base+"#2" || buf.String() != "two" {
		t.Errorf("Load(%s#) = %s %q, want %s#2 \"two\"", base, ce.Key, buf.String(), base)
	}
}
