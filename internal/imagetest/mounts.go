package imagetest

import (
	"bufio"
	"os"
	"strings"
)

// ThreadMounts lists the mount points below dir in the calling thread's
// mount namespace (a test that unshares one on a locked thread reads its
// own).
func ThreadMounts(dir string) ([]string, error) {
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 4 && strings.HasPrefix(fs[4], dir+"/") {
			out = append(out, fs[4])
		}
	}
	return out, sc.Err()
}
