package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand"
	"os"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxPath is the host file BusyboxLayer packs (Debian's busybox-static).
const BusyboxPath = "/bin/busybox"

// Epoch is the modification time of every entry in the layers this package
// makes, and the creation time of its images.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Applets are the busybox applets BusyboxLayer links in /bin.
var Applets = []string{
	"[", "awk", "basename", "cat", "chmod", "chown", "cp", "cut", "date",
	"dirname", "du", "echo", "env", "expr", "false", "find", "grep", "gunzip",
	"gzip", "head", "hostname", "id", "kill", "ln", "ls", "mkdir", "mktemp",
	"mv", "printf", "ps", "pwd", "readlink", "rm", "rmdir", "sed", "seq",
	"sh", "sleep", "sort", "stat", "tail", "tar", "tee", "test", "touch",
	"tr", "true", "uname", "uniq", "wc", "wget", "which", "whoami", "xargs",
}

// Passwd and Group are BusyboxLayer's /etc/passwd and /etc/group.
const (
	Passwd = "root:x:0:0:root:/root:/bin/sh\n" +
		"app:x:1000:1000:app:/home/app:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	Group = "root:x:0:\n" +
		"app:x:1000:\n" +
		"nogroup:x:65534:\n"
)

// busyboxTar memoizes the compressed busybox layer: it is derived from a
// host file only and never changes during a test binary's run, and every
// package's tests want it. (The one package-level value in imagetest.)
var busyboxTar = sync.OnceValues(func() ([]byte, error) { return busyboxTarOf(BusyboxPath) })

// busyboxArm64Tar is busyboxTar for BusyboxArm64Path.
var busyboxArm64Tar = sync.OnceValues(func() ([]byte, error) { return busyboxTarOf(BusyboxArm64Path) })

// busyboxTarOf is the busybox layer of the busybox binary at path.
func busyboxTarOf(path string) ([]byte, error) {
	bb, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var es []entry
	es = append(es,
		entry{name: "bin/", mode: 0o755, typ: tar.TypeDir},
		entry{name: "bin/busybox", mode: 0o755, typ: tar.TypeReg, data: bb},
	)
	for _, a := range Applets {
		es = append(es, entry{name: "bin/" + a, mode: 0o777, typ: tar.TypeSymlink, link: "busybox"})
	}
	es = append(es,
		entry{name: "etc/", mode: 0o755, typ: tar.TypeDir},
		entry{name: "etc/group", mode: 0o644, typ: tar.TypeReg, data: []byte(Group)},
		entry{name: "etc/passwd", mode: 0o644, typ: tar.TypeReg, data: []byte(Passwd)},
		entry{name: "root/", mode: 0o700, typ: tar.TypeDir},
		entry{name: "tmp/", mode: 0o1777, typ: tar.TypeDir},
	)
	return tarGzip(es, gzip.DefaultCompression)
}

// BusyboxLayer returns a gzip layer (OCI media type) holding the host's
// /bin/busybox (it Requires "busybox"), symlinks /bin/APPLET → busybox
// for every name in Applets, /etc/passwd (root 0, app 1000, nobody 65534),
// /etc/group, /root (0700) and /tmp (1777). Entries are sorted, owned by
// 0:0 and dated Epoch, so the digest depends only on the busybox binary.
func BusyboxLayer(t testing.TB) v1.Layer {
	t.Helper()
	Require(t, "busybox")
	b, err := busyboxTar()
	if err != nil {
		t.Fatalf("imagetest: building busybox layer: %v", err)
	}
	return bytesLayer(t, b)
}

// BusyboxArm64Path is where `.ci/deps test` unpacks Debian's arm64
// busybox-static (dpkg --add-architecture arm64; apt-get download
// busybox-static:arm64; dpkg-deb -x), for multi-platform tests.
const BusyboxArm64Path = "/var/cache/kiln-test/busybox-arm64/bin/busybox"

// BusyboxArm64Layer is BusyboxLayer with the arm64 busybox of
// BusyboxArm64Path (it Requires "busybox-arm64").
func BusyboxArm64Layer(t testing.TB) v1.Layer {
	t.Helper()
	Require(t, "busybox-arm64")
	b, err := busyboxArm64Tar()
	if err != nil {
		t.Fatalf("imagetest: building arm64 busybox layer: %v", err)
	}
	return bytesLayer(t, b)
}

// RandomLayer returns a gzip layer (OCI media type) of about size bytes of
// incompressible content, the same for the same seed and size: files of at
// most 1 MiB under /random-SEED/.
func RandomLayer(t testing.TB, seed int64, size int) v1.Layer {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	dir := fmt.Sprintf("random-%d/", seed)
	es := []entry{{name: dir, mode: 0o755, typ: tar.TypeDir}}
	for i := 0; size > 0 || i == 0; i++ {
		n := min(size, 1<<20)
		data := make([]byte, n)
		rng.Read(data)
		es = append(es, entry{name: fmt.Sprintf("%sfile-%04d", dir, i), mode: 0o644, typ: tar.TypeReg, data: data})
		size -= n
	}
	b, err := tarGzip(es, gzip.BestSpeed)
	if err != nil {
		t.Fatalf("imagetest: building random layer: %v", err)
	}
	return bytesLayer(t, b)
}

func bytesLayer(t testing.TB, b []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatalf("imagetest: making layer: %v", err)
	}
	return plainLayer{l}
}

// plainLayer hides the tarball layer's Descriptor method. That descriptor
// carries an empty, non-nil Annotations map, which mutate copies into the
// manifest, and validate.Image then reports the manifest as not
// round-tripping through JSON (ggcr v0.22.1). Any kiln code that builds
// images from tarball layers meets the same thing.
type plainLayer struct{ v1.Layer }

type entry struct {
	name string
	mode int64
	typ  byte
	data []byte
	link string
}

// tarGzip writes entries, in the given order, as a gzip-compressed tar with
// numeric 0:0 ownership and Epoch mtimes.
func tarGzip(es []entry, level int) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for _, e := range es {
		h := &tar.Header{
			Typeflag: e.typ,
			Name:     e.name,
			Linkname: e.link,
			Mode:     e.mode,
			Size:     int64(len(e.data)),
			ModTime:  Epoch,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("writing tar header %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("writing tar entry %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing tar: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("closing gzip: %w", err)
	}
	return buf.Bytes(), nil
}
