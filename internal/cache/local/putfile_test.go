package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/cache"
)

// TestPutFile: a verified blob file on the cache's file system becomes a
// hard link to it (no bytes copied); when its name no longer names the
// file that was verified, the open file is copied instead; a file of the
// wrong size is refused.
func TestPutFile(t *testing.T) {
	data := []byte("a layer blob, verified by whoever wrote it")
	sum := sha256.Sum256(data)
	desc := v1.Descriptor{MediaType: types.OCILayer, Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}, Size: int64(len(data))}
	tests := []struct {
		name string
		// swap, when set, puts another file under the source's name after
		// it was opened.
		swap     bool
		size     int64
		wantLink bool
		wantErr  error
	}{
		{name: "linked", size: desc.Size, wantLink: true},
		{name: "name replaced: copied", swap: true, size: desc.Size},
		{name: "wrong size", size: desc.Size + 1, wantErr: cache.ErrDigestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Both in one temp dir: one file system.
			root := t.TempDir()
			srcPath := filepath.Join(root, "blob")
			if err := os.WriteFile(srcPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(srcPath)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if tt.swap {
				other := filepath.Join(root, "other")
				os.WriteFile(other, []byte("not the verified bytes at all, but same len"), 0o644)
				if err := os.Rename(other, srcPath); err != nil {
					t.Fatal(err)
				}
			}
			d := &dir{path: filepath.Join(root, "cache"), tag: "latest"}
			want := desc
			want.Size = tt.size
			err = d.PutFile(context.Background(), want, f)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("PutFile: %v, want %v", err, tt.wantErr)
				}
				if _, err := os.Stat(d.blobPath(desc.Digest)); err == nil {
					t.Errorf("PutFile failed but stored the blob")
				}
				return
			}
			if err != nil {
				t.Fatalf("PutFile: %v", err)
			}
			got, err := os.ReadFile(d.blobPath(desc.Digest))
			if err != nil || string(got) != string(data) {
				t.Fatalf("stored blob = %q (%v), want %q", got, err, data)
			}
			ffi, _ := f.Stat()
			bfi, _ := os.Stat(d.blobPath(desc.Digest))
			if linked := os.SameFile(ffi, bfi); linked != tt.wantLink {
				t.Errorf("blob is a hard link of the source: %v, want %v", linked, tt.wantLink)
			}
			if bfi.Mode().Perm() != 0o644 {
				t.Errorf("blob mode %v, want 0644", bfi.Mode().Perm())
			}
			ents, _ := os.ReadDir(filepath.Join(d.path, "blobs", "sha256"))
			if len(ents) != 1 {
				t.Errorf("blobs dir holds %d entries, want 1 (no temporary file left)", len(ents))
			}
		})
	}
}
