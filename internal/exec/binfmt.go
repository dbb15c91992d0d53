package exec

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// BinfmtDir is where the kernel's binfmt_misc is mounted.
const BinfmtDir = "/proc/sys/fs/binfmt_misc"

// BinfmtConfDir is where Debian's qemu-user-static keeps its handlers, in
// systemd-binfmt's format (one ":name:type:offset:magic:mask:interpreter:flags"
// line a file).
const BinfmtConfDir = "/usr/lib/binfmt.d"

// enableHint is how a user gets a handler, for every error that lacks one.
const enableHint = "Debian: apt-get install qemu-user-static, with binfmt_misc mounted (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc); or run kiln binfmt --install"

// Handler is one binfmt_misc handler, as the kernel shows it.
type Handler struct {
	// Name is the handler's file name (qemu-aarch64).
	Name string
	// Enabled is false for a handler switched off.
	Enabled bool
	// Interpreter is the program binaries are run through.
	Interpreter string
	// Flags are the handler's flags (P, O, C, F).
	Flags string
	// Offset, Magic and Mask say which files the handler takes.
	Offset int
	Magic  []byte
	Mask   []byte
}

// FixBinary reports whether the handler has the F flag: the kernel opens
// the interpreter when the handler is registered, so it runs inside a
// container whose root filesystem does not have it.
func (h Handler) FixBinary() bool { return strings.Contains(h.Flags, "F") }

// elfMachine is the ELF header fields that tell an architecture's
// executables apart: class (32/64 bit), data (byte order), e_machine.
type elfMachine struct {
	class, data byte
	machine     uint16
}

// elfMachines are the linux architectures kiln knows how to emulate, by
// GOARCH name.
var elfMachines = map[string]elfMachine{
	"386":      {1, 1, 0x03},
	"amd64":    {2, 1, 0x3e},
	"arm":      {1, 1, 0x28},
	"arm64":    {2, 1, 0xb7},
	"ppc64le":  {2, 1, 0x15},
	"ppc64":    {2, 2, 0x15},
	"s390x":    {2, 2, 0x16},
	"riscv64":  {2, 1, 0xf3},
	"mips64le": {2, 1, 0x08},
	"mips64":   {2, 2, 0x08},
	"loong64":  {2, 1, 0x102},
}

// elfHeader is the start of an ELF file of type typ (2 executable, 3
// shared/PIE) for m.
func (m elfMachine) elfHeader(typ uint16) []byte {
	h := make([]byte, 20)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = m.class, m.data, 1
	put := func(off int, v uint16) {
		if m.data == 2 {
			h[off], h[off+1] = byte(v>>8), byte(v)
		} else {
			h[off], h[off+1] = byte(v), byte(v>>8)
		}
	}
	put(16, typ)
	put(18, m.machine)
	return h
}

// Takes reports whether the handler runs executables of arch (a GOARCH name).
func (h Handler) Takes(arch string) bool {
	m, ok := elfMachines[arch]
	if !ok || len(h.Magic) == 0 {
		return false
	}
	for _, typ := range []uint16{2, 3} {
		if h.matches(m.elfHeader(typ)) {
			return true
		}
	}
	return false
}

func (h Handler) matches(file []byte) bool {
	if h.Offset < 0 || h.Offset+len(h.Magic) > len(file) {
		return false
	}
	for i, b := range h.Magic {
		mask := byte(0xff)
		if i < len(h.Mask) {
			mask = h.Mask[i]
		}
		if file[h.Offset+i]&mask != b&mask {
			return false
		}
	}
	return true
}

// Handlers reads the handlers registered in dir (a mounted binfmt_misc).
// A missing dir is an error that says how to mount it; a dir without
// handlers (binfmt_misc not mounted on its mount point) has none.
func Handlers(dir string) ([]Handler, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("binfmt_misc is not mounted at %s (%s)", dir, enableHint)
	}
	if status, err := os.ReadFile(filepath.Join(dir, "status")); err == nil && strings.TrimSpace(string(status)) != "enabled" {
		return nil, fmt.Errorf("binfmt_misc at %s is disabled (echo 1 > %s)", dir, filepath.Join(dir, "status"))
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	var out []Handler
	for _, e := range ents {
		if e.Name() == "status" || e.Name() == "register" || e.IsDir() {
			continue
		}
		h, err := readHandler(filepath.Join(dir, e.Name()))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // unregistered meanwhile
			}
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

func readHandler(path string) (Handler, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Handler{}, err
	}
	h := Handler{Name: filepath.Base(path)}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "enabled":
			h.Enabled = true
		case "interpreter":
			h.Interpreter = v
		case "flags:":
			h.Flags = v
		case "offset":
			h.Offset, _ = strconv.Atoi(v)
		case "magic":
			h.Magic, _ = hex.DecodeString(v)
		case "mask":
			h.Mask, _ = hex.DecodeString(v)
		}
	}
	return h, nil
}

// Native reports whether the host runs executables of arch itself (a
// GOARCH name): its own architecture, and 386 on amd64.
func Native(host, arch string) bool {
	return arch == host || (host == "amd64" && arch == "386")
}

// CheckEmulation returns nil when dir (a mounted binfmt_misc) has an
// enabled handler with the F flag for executables of arch; otherwise an
// error of one line that says how to get one. kiln never registers a
// handler by itself (see Install).
func CheckEmulation(dir, arch string) error {
	if _, ok := elfMachines[arch]; !ok {
		return fmt.Errorf("RUN for linux/%s: kiln cannot emulate this architecture", arch)
	}
	hs, err := Handlers(dir)
	if err != nil {
		return fmt.Errorf("RUN for linux/%s needs QEMU user emulation, but %w", arch, err)
	}
	var noF []string
	for _, h := range hs {
		if !h.Enabled || !h.Takes(arch) {
			continue
		}
		if h.FixBinary() {
			return nil
		}
		noF = append(noF, h.Name)
	}
	if len(noF) > 0 {
		return fmt.Errorf("RUN for linux/%s needs QEMU user emulation: the binfmt_misc handler %s in %s lacks the F (fix binary) flag, so it cannot run inside a container (re-register it with F: kiln binfmt --install after removing it, or docker/setup-qemu-action)",
			arch, strings.Join(noF, ", "), dir)
	}
	return fmt.Errorf("RUN for linux/%s needs QEMU user emulation: no binfmt_misc handler with the F (fix binary) flag for %s in %s (%s)", arch, arch, dir, enableHint)
}

// Registration is one handler Install registered or found.
type Registration struct {
	// Name is the handler's name.
	Name string
	// Archs are the GOARCH names it runs.
	Archs []string
	// Interpreter is its interpreter.
	Interpreter string
	// Already is true when a handler of that name was registered before.
	Already bool
}

// Install registers in dir (a mounted binfmt_misc, as root) every
// qemu-user-static handler of confDir (BinfmtConfDir) for an architecture
// the host does not run natively, with the F flag added, skipping names
// already registered. It is what `kiln binfmt --install` does, and
// nothing else in kiln registers handlers.
func Install(dir, confDir, host string) ([]Registration, error) {
	if _, err := Handlers(dir); err != nil {
		return nil, err
	}
	confs, err := filepath.Glob(filepath.Join(confDir, "qemu-*.conf"))
	if err != nil {
		return nil, err
	}
	if len(confs) == 0 {
		return nil, fmt.Errorf("no qemu handlers in %s (%s)", confDir, "Debian: apt-get install qemu-user-static")
	}
	slices.Sort(confs)
	var out []Registration
	for _, path := range confs {
		reg, line, err := parseConf(path)
		if err != nil {
			return out, err
		}
		if len(reg.Archs) == 0 || slices.ContainsFunc(reg.Archs, func(a string) bool { return Native(host, a) }) {
			continue
		}
		if _, err := os.Stat(reg.Interpreter); err != nil {
			continue // a handler whose emulator is not installed
		}
		if _, err := os.Lstat(filepath.Join(dir, reg.Name)); err == nil {
			reg.Already = true
			out = append(out, reg)
			continue
		}
		if err := register(dir, line); err != nil {
			return out, fmt.Errorf("registering %s: %w", reg.Name, err)
		}
		out = append(out, reg)
	}
	return out, nil
}

// register writes one handler line to dir's register file, which must
// exist (binfmt_misc mounted).
func register(dir, line string) error {
	f, err := os.OpenFile(filepath.Join(dir, "register"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("binfmt_misc is not mounted at %s or not writable (run as root; mount -t binfmt_misc binfmt_misc %s): %w", dir, dir, err)
	}
	_, err = f.Write([]byte(line))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// parseConf reads one systemd-binfmt line and returns it with the F flag.
func parseConf(path string) (Registration, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Registration{}, "", err
	}
	var line string
	for l := range strings.SplitSeq(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, ";") {
			line = l
			break
		}
	}
	// :name:type:offset:magic:mask:interpreter:flags
	f := strings.Split(line, ":")
	if len(f) != 8 || f[0] != "" || f[2] != "M" {
		return Registration{}, "", fmt.Errorf("%s: not a binfmt_misc magic line", path)
	}
	magic, err1 := unescape(f[4])
	mask, err2 := unescape(f[5])
	if err1 != nil || err2 != nil {
		return Registration{}, "", fmt.Errorf("%s: bad magic or mask", path)
	}
	off, _ := strconv.Atoi(f[3])
	h := Handler{Name: f[1], Offset: off, Magic: magic, Mask: mask, Interpreter: f[6], Flags: f[7]}
	reg := Registration{Name: f[1], Interpreter: f[6]}
	for arch := range elfMachines {
		if h.Takes(arch) {
			reg.Archs = append(reg.Archs, arch)
		}
	}
	slices.Sort(reg.Archs)
	if !h.FixBinary() {
		f[7] += "F"
	}
	return reg, strings.Join(f, ":") + "\n", nil // the kernel takes one trailing newline
}

// unescape decodes a binfmt magic or mask written with \xHH escapes.
func unescape(s string) ([]byte, error) {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && s[i+1] == 'x' {
			b, err := hex.DecodeString(s[i+2 : i+4])
			if err != nil {
				return nil, err
			}
			out = append(out, b...)
			i += 3
			continue
		}
		out = append(out, s[i])
	}
	return out, nil
}

// Archs are the GOARCH names CheckEmulation knows.
func Archs() []string {
	out := make([]string, 0, len(elfMachines))
	for a := range elfMachines {
		out = append(out, a)
	}
	return out
}
