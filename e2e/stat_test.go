package e2e

import (
	"debug/elf"
	"io"
	"os"
	"syscall"
	"testing"
)

func statUID(fi os.FileInfo) int {
	if fi == nil {
		return -1
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

func readAllClose(rc io.ReadCloser) ([]byte, error) {
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestStaticBinary: kiln is one static binary (built with CGO_ENABLED=0, as
// `make kiln` and the README's install do).
func TestStaticBinary(t *testing.T) {
	f, err := elf.Open(kilnBin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("kiln has an ELF interpreter: it is dynamically linked")
		}
	}
}
