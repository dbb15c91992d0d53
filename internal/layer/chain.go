package layer

import (
	"crypto/sha256"
	"encoding/hex"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ChainIDs computes the OCI chain IDs of a stack of layers given by their
// diff IDs, bottom layer first: chain[0] = diff[0] and
// chain[i] = sha256(chain[i-1] + " " + diff[i]). The result has the same
// length as diffIDs; an empty input gives an empty result.
func ChainIDs(diffIDs []v1.Hash) []v1.Hash {
	out := make([]v1.Hash, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		sum := sha256.Sum256([]byte(out[i-1].String() + " " + d.String()))
		out[i] = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	}
	return out
}
