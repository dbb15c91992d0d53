package plan

import (
	"fmt"
	"runtime"
	"strings"
	"unicode"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// HostPlatform is the platform kiln builds for by default: linux on the
// architecture of the running binary, normalized (v7 on arm).
func HostPlatform() v1.Platform {
	return NormalizePlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH})
}

// ParsePlatform parses os[/arch[/variant]] ("linux/arm64", "linux/arm/v7",
// "linux") and normalizes it as containerd does: lower case, the usual
// architecture aliases mapped to GOARCH names (aarch64 -> arm64, x86_64 ->
// amd64), the default variant dropped (arm64/v8, amd64/v1) or filled in
// (arm -> v7). A missing arch is the host's. The error names the value.
func ParsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "/")
	if len(parts) > 3 || parts[0] == "" {
		return v1.Platform{}, fmt.Errorf("invalid platform %q (want os/arch[/variant], such as linux/arm64)", s)
	}
	for _, p := range parts {
		if p == "" || strings.IndexFunc(p, func(r rune) bool {
			return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' && r != '-' && r != '.'
		}) >= 0 {
			return v1.Platform{}, fmt.Errorf("invalid platform %q (want os/arch[/variant], such as linux/arm64)", s)
		}
	}
	p := v1.Platform{OS: parts[0], Architecture: HostPlatform().Architecture}
	if len(parts) == 1 {
		p.Variant = HostPlatform().Variant
		return p, nil
	}
	p.Architecture = parts[1]
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return NormalizePlatform(p), nil
}

// NormalizePlatform returns p with containerd's normalization: GOARCH
// names for the architecture aliases, no default variant on amd64 and
// arm64, v7 on an arm without one, and OS features and version dropped.
func NormalizePlatform(p v1.Platform) v1.Platform {
	out := v1.Platform{OS: strings.ToLower(p.OS), Architecture: strings.ToLower(p.Architecture), Variant: strings.ToLower(p.Variant)}
	switch out.OS {
	case "macos":
		out.OS = "darwin"
	}
	switch out.Architecture {
	case "i386", "i686", "x86":
		out.Architecture, out.Variant = "386", ""
	case "x86_64", "x86-64", "amd64":
		out.Architecture = "amd64"
		if out.Variant == "v1" {
			out.Variant = ""
		}
	case "aarch64", "arm64":
		out.Architecture = "arm64"
		if out.Variant == "8" || out.Variant == "v8" {
			out.Variant = ""
		}
	case "armhf":
		out.Architecture, out.Variant = "arm", "v7"
	case "armel":
		out.Architecture, out.Variant = "arm", "v6"
	case "arm":
		switch out.Variant {
		case "", "7":
			out.Variant = "v7"
		case "5", "6", "8":
			out.Variant = "v" + out.Variant
		}
	}
	return out
}

// FormatPlatform returns p as os/arch[/variant] ("linux/arm64").
func FormatPlatform(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// SamePlatform reports whether a and b are the same platform once
// normalized (OS, architecture and variant).
func SamePlatform(a, b v1.Platform) bool {
	a, b = NormalizePlatform(a), NormalizePlatform(b)
	return a.OS == b.OS && a.Architecture == b.Architecture && a.Variant == b.Variant
}

// PlatformDir is the directory name buildx gives a platform's files in a
// multi-platform local export: os_arch[_variant] ("linux_arm64").
func PlatformDir(p v1.Platform) string {
	return strings.ReplaceAll(FormatPlatform(p), "/", "_")
}
