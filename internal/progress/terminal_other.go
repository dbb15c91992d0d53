//go:build !linux

package progress

import "os"

// IsTerminal reports whether f is a terminal. kiln builds only on Linux;
// elsewhere nothing is a terminal, so --progress=auto picks plain.
func IsTerminal(f *os.File) bool { return false }

func termSize(fd uintptr) (cols, rows int) { return 0, 0 }
