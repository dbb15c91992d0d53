package solve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/layer"
)

// TestSecondReadDiffersLeavesNoSnapshot: when the second read of
// a step's diff does not hash to the diff ID its snapshot was committed
// under, the step fails; the snapshot published under the first read's
// chain ID does not stay behind for later builds to mount (the two reads
// disagree, so which one the tree matches is unknown).
func TestSecondReadDiffersLeavesNoSnapshot(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n"})
	e := newEnv(t)
	b := e.newBuild(ctxDir, "FROM scratch\n"+copyA+"\n", Options{})
	var first v1.Hash
	b.s.compress = func(ctx context.Context, dst io.Writer, src io.Reader, c layer.Compression, level int) (layer.Blob, error) {
		tar, err := io.ReadAll(src)
		if err != nil {
			return layer.Blob{}, err
		}
		sum := sha256.Sum256(tar) // what the first read hashed too
		first = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
		return layer.Compress(ctx, dst, io.MultiReader(strings.NewReader(string(tar)), strings.NewReader("x")), c, level)
	}
	if _, err := b.s.Solve(context.Background(), b.graph); err == nil || !strings.Contains(err.Error(), "not to the diff ID") {
		t.Fatalf("Solve: got %v, want the diff ID mismatch", err)
	}
	// One layer on scratch: its chain ID is its diff ID.
	if e.snap.Has(first) {
		t.Errorf("snapshot %s stays published after its layer failed the diff ID check", first)
	}
}
