package remote

import (
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// heldManifests remembers, per tag, the manifest this process last read
// there (Manifest) or wrote there (PutManifest), or that the registry had
// none. A cache export compares what it is about to publish with what its
// import read moments before, without asking the registry again.
type heldManifests struct {
	mu   sync.Mutex
	tags map[string]heldManifest // by the tag's full name
}

type heldManifest struct {
	raw     []byte // nil: the registry had no manifest there
	mt      types.MediaType
	missing bool
}

func (h *heldManifests) put(r name.Reference, m heldManifest) {
	if _, ok := r.(name.Tag); !ok {
		return // a digest reference names its bytes: nothing to remember
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tags == nil {
		h.tags = map[string]heldManifest{}
	}
	h.tags[r.Name()] = m
}

func (h *heldManifests) forget(r name.Reference) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.tags, r.Name())
}

func (h *heldManifests) get(r name.Reference) (heldManifest, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.tags[r.Name()]
	return m, ok
}

// HeldManifest returns the manifest this client last read at the tag ref
// or wrote there, without a request; ok is false when it has done neither
// (or ref is not a tag). found is false when the registry had no manifest
// at ref when last asked. The answer is as old as that request: another
// writer may have moved the tag since. Callers that may act on a stale
// answer only to skip work that would be repeated identically use it (a
// cache export that would publish the manifest its import just read).
func (c *Client) HeldManifest(ref string) (raw []byte, mt types.MediaType, found, ok bool) {
	r, err := c.ParseReference(ref)
	if err != nil {
		return nil, "", false, false
	}
	m, ok := c.held.get(r)
	if !ok {
		return nil, "", false, false
	}
	return m.raw, m.mt, !m.missing, true
}

// heldBlobs is every blob this process saw in, or wrote to, a repository:
// a later question whether the repository has it (a cache export after
// the image push to the same repository) is answered without a request.
// Registries do not delete blobs a manifest of theirs lists; one deleted
// behind kiln's back within a build makes the manifest PUT that needs it
// fail, as a HEAD just before it could not have prevented.
type heldBlobs struct {
	mu  sync.Mutex
	set map[string]bool // repository name + "@" + digest
	// sent are the blobs this process found missing in a repository and
	// read to upload there (WriteLayer), by the same key.
	sent map[string]bool
	// missing are the blobs BlobExists last found missing in a repository,
	// by the same key, until a WriteLayer of them takes the answer.
	missing map[string]bool
}

func (h *heldBlobs) add(repo name.Repository, digests ...v1.Hash) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.set == nil {
		h.set = map[string]bool{}
	}
	for _, d := range digests {
		h.set[repo.Name()+"@"+d.String()] = true
		delete(h.missing, repo.Name()+"@"+d.String())
	}
}

// addMissing records that the registry answered that repo lacks d.
func (h *heldBlobs) addMissing(repo name.Repository, d v1.Hash) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.missing == nil {
		h.missing = map[string]bool{}
	}
	h.missing[repo.Name()+"@"+d.String()] = true
}

// takeMissing reports whether d was found missing in repo (addMissing)
// and not written since, and forgets that answer: one upload uses it.
func (h *heldBlobs) takeMissing(repo name.Repository, d v1.Hash) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := repo.Name() + "@" + d.String()
	if !h.missing[k] {
		return false
	}
	delete(h.missing, k)
	return true
}

func (h *heldBlobs) has(repo name.Repository, d v1.Hash) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.set[repo.Name()+"@"+d.String()]
}

// addSent records that d was missing in repo and is being uploaded there.
func (h *heldBlobs) addSent(repo name.Repository, d v1.Hash) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sent == nil {
		h.sent = map[string]bool{}
	}
	h.sent[repo.Name()+"@"+d.String()] = true
}

// anySent reports whether one of digests was missing in repo when this
// process uploaded it there.
func (h *heldBlobs) anySent(repo name.Repository, digests []v1.Hash) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range digests {
		if h.sent[repo.Name()+"@"+d.String()] {
			return true
		}
	}
	return false
}

// imageBlobs returns the digests of img's config and layers, as its
// manifest names them (nothing is read).
func imageBlobs(img v1.Image) []v1.Hash {
	m, err := img.Manifest()
	if err != nil {
		return nil
	}
	out := []v1.Hash{m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}
