package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func TestZZDebugSnap(t *testing.T) {
	_, base := setup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": strings.ReplaceAll("FROM {{BASE}}\nRUN mkdir /x && echo a > /x/a\nRUN --network=none echo b > /x/b\n", "{{BASE}}", base)})
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	for _, extra := range [][]string{nil, {"--copy-snapshots"}} {
		tarPath := filepath.Join(t.TempDir(), "img.tar")
		args := append([]string{"build", "--progress", "plain", "-o", "type=oci,dest=" + tarPath}, extra...)
		mustKiln(t, filepath.Join(t.TempDir(), "state"), env, append(args, ctxDir)...)
		img, _ := ociImageFile(t, tarPath)
		for i, lt := range layerTars(t, img) {
			if i == 0 {
				continue
			}
			for _, h := range tarHeaders(t, lt) {
				fmt.Printf("%v L%d %s %c %o %d:%d %v %s %v\n", extra, i, h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime.Unix(), h.Linkname, h.PAXRecords)
			}
		}
	}
}
