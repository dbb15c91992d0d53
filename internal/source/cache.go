package source

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
)

// statKey is what must be unchanged for a cached checksum to be reused.
type statKey struct {
	Size  int64
	Mtime int64
	Ctime int64
	Ino   uint64
	Dev   uint64
}

type sumEntry struct {
	statKey
	Sum [sha256.Size]byte
	// Xattrs are kept as bytes: a value such as a file capability is
	// binary.
	Xattrs []xattrPair
}

// xattrPair is one extended attribute in the checksum cache.
type xattrPair struct {
	Name, Value []byte
}

// sumFileMagic starts a checksum cache file, and names its version: 1 to 3
// were JSON (before 3 without xattrs, or with their values as text), which
// this reader ignores. Version 4 is binary, as decoding 5,000 entries of
// JSON took a fresh checkout's build longer than hashing 20 MB:
//
//	magic
//	uvarint len, root
//	uvarint count, then count entries:
//	  uvarint len, path; uvarint size; varint mtime, ctime (ns);
//	  uvarint inode, device; 32 bytes of sha256;
//	  uvarint n, then n xattrs: uvarint len, name; uvarint len, value
//	4 bytes: CRC-32C of all before, little-endian
//
// The CRC stands between a damaged file and a wrong sum, which would be a
// wrong cache key: a file whose CRC does not match is an empty cache.
const sumFileMagic = "kiln checksum cache 4\n"

// sumCache maps a path relative to the tree root to its content checksum.
// Entries are never dropped, so entries of deleted files linger; they are
// harmless (a lookup checks the stat first) and cost only file size.
type sumCache struct {
	path, root string

	mu      sync.Mutex
	entries map[string]sumEntry
	dirty   map[string]bool
}

func loadSumCache(path, root string) *sumCache {
	return &sumCache{path: path, root: root, entries: readSumFile(path, root), dirty: map[string]bool{}}
}

// readSumFile returns the entries saved for root, or an empty map when the
// file is missing, damaged, of another version or for another root.
func readSumFile(path, root string) map[string]sumEntry {
	b, err := os.ReadFile(path)
	if err != nil {
		return map[string]sumEntry{}
	}
	entries, err := decodeSums(b, root)
	if err != nil {
		return map[string]sumEntry{}
	}
	return entries
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeSums is the checksum cache file of entries under root.
func encodeSums(root string, entries map[string]sumEntry) []byte {
	b := make([]byte, 0, len(sumFileMagic)+len(root)+len(entries)*96)
	b = append(b, sumFileMagic...)
	b = appendBytes(b, []byte(root))
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for rel, e := range entries {
		b = appendBytes(b, []byte(rel))
		b = binary.AppendUvarint(b, uint64(e.Size))
		b = binary.AppendVarint(b, e.Mtime)
		b = binary.AppendVarint(b, e.Ctime)
		b = binary.AppendUvarint(b, e.Ino)
		b = binary.AppendUvarint(b, e.Dev)
		b = append(b, e.Sum[:]...)
		b = binary.AppendUvarint(b, uint64(len(e.Xattrs)))
		for _, x := range e.Xattrs {
			b = appendBytes(b, x.Name)
			b = appendBytes(b, x.Value)
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func appendBytes(b, v []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

// minSumEntry is the size of the smallest entry: six one-byte varints and
// the sum. A count is checked against it before anything is allocated.
const minSumEntry = 6 + sha256.Size + 1

// errBadSums is any checksum cache file that decodeSums does not take.
var errBadSums = errors.New("not a checksum cache of this version")

// decodeSums reads a file encodeSums wrote for root.
func decodeSums(b []byte, root string) (map[string]sumEntry, error) {
	if len(b) < len(sumFileMagic)+4 || string(b[:len(sumFileMagic)]) != sumFileMagic {
		return nil, errBadSums
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, errBadSums
	}
	d := sumDecoder{b: body[len(sumFileMagic):]}
	if string(d.bytes()) != root {
		return nil, errBadSums
	}
	n := d.uvarint()
	if n > uint64(len(d.b))/minSumEntry { // more entries than the bytes can hold
		return nil, errBadSums
	}
	entries := make(map[string]sumEntry, n)
	for range n {
		rel := string(d.bytes())
		var e sumEntry
		e.Size = int64(d.uvarint())
		e.Mtime = d.varint()
		e.Ctime = d.varint()
		e.Ino = d.uvarint()
		e.Dev = d.uvarint()
		copy(e.Sum[:], d.take(sha256.Size))
		nx := d.uvarint()
		if nx > uint64(len(d.b))/2 { // an xattr takes two bytes at least
			return nil, errBadSums
		}
		for range nx {
			if d.err {
				break
			}
			e.Xattrs = append(e.Xattrs, xattrPair{Name: d.bytes(), Value: d.bytes()})
		}
		if d.err {
			return nil, errBadSums
		}
		entries[rel] = e
	}
	if d.err || len(d.b) != 0 {
		return nil, errBadSums
	}
	return entries, nil
}

// sumDecoder reads the fields of a checksum cache file; a field past the
// end sets err and reads as zero.
type sumDecoder struct {
	b   []byte
	err bool
}

func (d *sumDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *sumDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *sumDecoder) take(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.err, d.b = true, nil
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *sumDecoder) bytes() []byte { return d.take(d.uvarint()) }

func (c *sumCache) get(rel string, st statKey) (content, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[rel]
	if !ok || e.statKey != st {
		return content{}, false
	}
	var x map[string]string
	for _, p := range e.Xattrs {
		if x == nil {
			x = map[string]string{}
		}
		x[string(p.Name)] = string(p.Value)
	}
	return content{sum: hex.EncodeToString(e.Sum[:]), xattrs: x}, true
}

func (c *sumCache) put(rel string, st statKey, v content) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := sumEntry{statKey: st}
	if len(v.sum) != hex.EncodedLen(len(e.Sum)) {
		return // not a sum hashFile makes
	}
	if _, err := hex.Decode(e.Sum[:], []byte(v.sum)); err != nil {
		return // not a sum hashFile makes
	}
	for n, val := range v.xattrs {
		e.Xattrs = append(e.Xattrs, xattrPair{Name: []byte(n), Value: []byte(val)})
	}
	c.entries[rel] = e
	c.dirty[rel] = true
}

// save merges this cache's new entries into what is on disk now (another
// build may have saved meanwhile) and writes the result atomically.
func (c *sumCache) save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.dirty) == 0 {
		return nil
	}
	merged := readSumFile(c.path, c.root)
	for rel := range c.dirty {
		merged[rel] = c.entries[rel]
	}
	b := encodeSums(c.root, merged)
	dir := filepath.Dir(c.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	c.dirty = map[string]bool{}
	return nil
}
