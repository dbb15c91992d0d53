package exec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// ResolveUser resolves a Dockerfile USER ("name", "uid", "name:group",
// "uid:gid", or "" for root) against root's /etc/passwd and /etc/group, as
// Docker does:
//
//   - a name must have a passwd entry, a group name a group entry; an
//     unknown one is an error that names it;
//   - a numeric uid needs no passwd entry; its primary gid is then the
//     entry's, or 0 without one;
//   - an explicit group replaces the primary gid and is the only group;
//     otherwise the groups are the primary gid followed by those of
//     /etc/group that list the user's name (the primary gid once).
//
// groups is the process's whole supplementary group list: like BuildKit
// (and unlike docker run) it always holds the primary gid, so `id` prints
// "groups=0(root)" for root.
//
// Missing /etc/passwd or /etc/group files count as empty. Symlinks are
// resolved inside root.
func ResolveUser(root, user string) (uid, gid uint32, groups []uint32, err error) {
	if user == "" {
		return 0, 0, []uint32{0}, nil
	}
	userPart, groupPart, hasGroup := strings.Cut(user, ":")
	if userPart == "" || (hasGroup && groupPart == "") {
		return 0, 0, nil, fmt.Errorf("resolving user %q: empty user or group", user)
	}
	passwd, err := readEntries(root, "/etc/passwd")
	if err != nil {
		return 0, 0, nil, fmt.Errorf("resolving user %q: %w", user, err)
	}

	name := ""
	if n, ok := parseID(userPart); ok {
		uid = n
		for _, e := range passwd {
			if id, ok := entryID(e, 2); ok && id == uid {
				name = e[0]
				gid, _ = entryID(e, 3)
				break
			}
		}
	} else {
		found := false
		for _, e := range passwd {
			if e[0] == userPart {
				var ok1, ok2 bool
				uid, ok1 = entryID(e, 2)
				gid, ok2 = entryID(e, 3)
				if !ok1 || !ok2 {
					return 0, 0, nil, fmt.Errorf("resolving user %q: malformed /etc/passwd entry for %s", user, userPart)
				}
				name, found = userPart, true
				break
			}
		}
		if !found {
			return 0, 0, nil, fmt.Errorf("resolving user %q: no user %s in /etc/passwd", user, userPart)
		}
	}

	if hasGroup {
		if n, ok := parseID(groupPart); ok {
			return uid, n, []uint32{n}, nil
		}
	}
	if !hasGroup && name == "" {
		return uid, gid, []uint32{gid}, nil
	}
	grp, err := readEntries(root, "/etc/group")
	if err != nil {
		return 0, 0, nil, fmt.Errorf("resolving user %q: %w", user, err)
	}
	if hasGroup {
		for _, e := range grp {
			if e[0] == groupPart {
				g, ok := entryID(e, 2)
				if !ok {
					return 0, 0, nil, fmt.Errorf("resolving user %q: malformed /etc/group entry for %s", user, groupPart)
				}
				return uid, g, []uint32{g}, nil
			}
		}
		return 0, 0, nil, fmt.Errorf("resolving user %q: no group %s in /etc/group", user, groupPart)
	}
	groups = []uint32{gid}
	for _, e := range grp {
		g, ok := entryID(e, 2)
		if !ok || g == gid || len(e) < 4 {
			continue
		}
		for _, member := range strings.Split(e[3], ",") {
			if member == name {
				groups = append(groups, g)
				break
			}
		}
	}
	return uid, gid, groups, nil
}

// parseID parses a decimal uid or gid.
func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// entryID parses field i of a passwd or group entry as an id.
func entryID(e []string, i int) (uint32, bool) {
	if len(e) <= i {
		return 0, false
	}
	return parseID(e[i])
}

// readEntries reads a colon-separated database such as /etc/passwd from
// inside root, skipping comments and blank lines. A missing file is empty.
func readEntries(root, name string) ([][]string, error) {
	p, err := securejoin.SecureJoin(root, name)
	if err != nil {
		return nil, fmt.Errorf("resolving %s in rootfs: %w", name, err)
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return out, nil
}
