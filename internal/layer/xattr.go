package layer

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// paxXattr is the PAX record prefix that carries an extended attribute
// (the convention of star, GNU tar and archive/tar).
const paxXattr = "SCHILY.xattr."

// overlayXattr is the prefix of the xattrs overlayfs keeps for itself. They
// describe one mount's bookkeeping and never travel in a layer tar.
const overlayXattr = "trusted.overlay."

// opaqueXattr marks an overlayfs directory whose lower contents are hidden.
const opaqueXattr = "trusted.overlay.opaque"

// readXattrs returns the extended attributes of path (not following a final
// symlink), without overlayfs' own. A filesystem without xattr support gives
// an empty map.
func readXattrs(path string) (map[string]string, error) {
	names, err := listXattrs(path)
	if err != nil {
		return nil, err
	}
	var out map[string]string
	for _, name := range names {
		// Overlay bookkeeping, and the host's SELinux labels (which would
		// carry the build host into the layer and break reproducibility;
		// Docker leaves them out too).
		if strings.HasPrefix(name, overlayXattr) || name == "security.selinux" {
			continue
		}
		val, err := getXattr(path, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed since listing
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s of %s: %w", name, path, err)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = string(val)
	}
	return out, nil
}

func listXattrs(path string) ([]string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Llistxattr(path, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			size, err := unix.Llistxattr(path, nil)
			if err != nil {
				return nil, fmt.Errorf("listing xattrs of %s: %w", path, err)
			}
			buf = make([]byte, size+64)
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("listing xattrs of %s: %w", path, err)
		}
		var names []string
		for _, b := range bytes.Split(buf[:n], []byte{0}) {
			if len(b) > 0 {
				names = append(names, string(b))
			}
		}
		return names, nil
	}
}

func getXattr(path, name string) ([]byte, error) {
	buf := make([]byte, 128)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			size, err := unix.Lgetxattr(path, name, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, size+64)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// isOpaque reports whether the overlayfs directory at path hides its lower
// contents.
func isOpaque(path string) (bool, error) {
	v, err := getXattr(path, opaqueXattr)
	switch {
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading opaque xattr of %s: %w", path, err)
	}
	return string(v) == "y", nil
}
