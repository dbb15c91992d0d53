package layer

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestChainIDs(t *testing.T) {
	t.Parallel()
	h := func(s string) v1.Hash {
		sum := sha256.Sum256([]byte(s))
		return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	}
	a, b, c := h("a"), h("b"), h("c")
	ab := h(a.String() + " " + b.String())
	abc := h(ab.String() + " " + c.String())
	tests := []struct {
		name string
		in   []v1.Hash
		want []v1.Hash
	}{
		{"empty", nil, []v1.Hash{}},
		{"one", []v1.Hash{a}, []v1.Hash{a}},
		{"three", []v1.Hash{a, b, c}, []v1.Hash{a, ab, abc}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ChainIDs(tt.in)); diff != "" {
				t.Errorf("ChainIDs mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
