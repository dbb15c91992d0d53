package source

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"runtime"
	"testing"
)

// TestDecodeSumsMemoryBounded: a checksum cache file whose CRC matches
// but whose counts claim more than the file holds (written by a buggy or
// hostile kiln: damage alone fails the CRC) is refused without allocating
// far more than the file's own size. The entry count may not exceed what
// the file can hold at the smallest entry size, and a field that does not
// decode ends the xattr loop.
func TestDecodeSumsMemoryBounded(t *testing.T) {
	const size = 64 << 10
	withCRC := func(b []byte) []byte {
		return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	}
	head := func() []byte { return appendBytes([]byte(sumFileMagic), []byte("/r")) }
	cases := map[string][]byte{
		// One entry per byte claimed; each is at least 39 bytes.
		"entry count": withCRC(append(binary.AppendUvarint(head(), size), make([]byte, size)...)),
		// One entry whose xattr count is the rest of the file, followed
		// by bytes that never decode as a length (an endless uvarint).
		"xattr count": func() []byte {
			b := binary.AppendUvarint(head(), 1)
			b = appendBytes(b, []byte("p"))
			b = append(b, 0, 0, 0, 0, 0) // size, mtime, ctime, inode, device
			b = append(b, make([]byte, sha256.Size)...)
			b = binary.AppendUvarint(b, size)
			for range size {
				b = append(b, 0xff)
			}
			return withCRC(b)
		}(),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := decodeSums(b, "/r")
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("a file claiming more than it holds decodes")
			}
			if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(16*len(b)); got > limit {
				t.Errorf("refusing a %d-byte file allocated %d bytes, want at most %d", len(b), got, limit)
			}
		})
	}
}
