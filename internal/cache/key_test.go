package cache

import (
	"slices"
	"strings"
	"testing"
)

func baseRun() RunInput {
	return RunInput{
		Parent:  ImageKey("sha256:1111111111111111111111111111111111111111111111111111111111111111"),
		Args:    []string{"/bin/sh", "-c", "make"},
		Env:     []string{"PATH=/bin", "A=1"},
		WorkDir: "/src",
		User:    "app",
		Network: "host",
		Mounts:  []MountInput{{Type: "bind", Target: "/ctx", Content: "sha256:aa"}},
	}
}

func baseCopy() CopyInput {
	return CopyInput{
		Parent:  ScratchKey(""),
		Sources: []string{"a.txt", "dir/"},
		Dest:    "/app/",
		Chown:   "1000:1000",
		Chmod:   "0644",
		Content: "sha256:bb",
	}
}

// TestKeyStable pins the keys of fixed inputs: a change here means every
// existing cache is invalidated, which must be a deliberate version bump.
func TestKeyStable(t *testing.T) {
	tests := []struct {
		name string
		got  Key
		want Key
	}{
		{"scratch", ScratchKey(""), "sha256:" + scratchHex},
		{"scratch linux/amd64", ScratchKey(DefaultPlatform), "sha256:" + scratchHex},
		{"run", RunKey(baseRun()), "sha256:" + runHex},
		{"copy", CopyKey(baseCopy()), "sha256:" + copyHex},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %s, want %s", tt.got, tt.want)
			}
		})
	}
}

func TestKeySameInputsSameKey(t *testing.T) {
	if a, b := RunKey(baseRun()), RunKey(baseRun()); a != b {
		t.Errorf("run keys differ: %s vs %s", a, b)
	}
	r := baseRun()
	r.Mounts = nil
	r2 := baseRun()
	r2.Mounts = []MountInput{}
	if RunKey(r) != RunKey(r2) {
		t.Errorf("nil and empty mounts give different keys")
	}
	c := baseCopy()
	c.Sources = nil
	c2 := baseCopy()
	c2.Sources = []string{}
	if CopyKey(c) != CopyKey(c2) {
		t.Errorf("nil and empty sources give different keys")
	}
}

// TestKeyLimitsOnlyWhenSet: --add-host, --shm-size and --ulimit join a
// RUN's key and inputs only when given, so builds without them keep the
// keys (TestKeyStable) and the input lists they had before.
func TestKeyLimitsOnlyWhenSet(t *testing.T) {
	r := baseRun()
	r.Hosts, r.Ulimits = []string{}, []string{}
	if got := RunKey(r); got != "sha256:"+runHex {
		t.Errorf("empty hosts and ulimits: key %s, want %s", got, runHex)
	}
	for _, in := range r.Inputs() {
		switch in.Name {
		case "shmSize", "addHost:", "ulimit:":
			t.Errorf("input %s listed without its flag", in.Name)
		}
	}
	r.Hosts, r.ShmSize, r.Ulimits = []string{"db:10.0.0.5"}, 64<<20, []string{"nofile=1024:2048"}
	var names []string
	for _, in := range r.Inputs() {
		names = append(names, in.Name)
	}
	for _, want := range []string{"addHost:db", "shmSize", "ulimit:nofile"} {
		if !slices.Contains(names, want) {
			t.Errorf("inputs %v lack %s", names, want)
		}
	}
	// A host given twice (IPv4 and IPv6) is one input, whose digest
	// changes with either address.
	r.Hosts = []string{"db:10.0.0.5", "db:fd00::5"}
	n, d := 0, ""
	for _, in := range r.Inputs() {
		if in.Name == "addHost:db" {
			n, d = n+1, in.Digest
		}
	}
	r.Hosts[1] = "db:fd00::6"
	for _, in := range r.Inputs() {
		if in.Name == "addHost:db" && in.Digest == d {
			t.Errorf("changing the second address of db kept its input digest")
		}
	}
	if n != 1 {
		t.Errorf("db given twice is %d inputs, want 1", n)
	}
}

func TestKeyChangesWithEveryInput(t *testing.T) {
	runMods := map[string]func(*RunInput){
		"parent (base digest)": func(r *RunInput) {
			r.Parent = ImageKey("sha256:2222222222222222222222222222222222222222222222222222222222222222")
		},
		"args (instruction text)": func(r *RunInput) { r.Args[2] = "make all" },
		"env":                     func(r *RunInput) { r.Env[1] = "A=2" },
		"build arg added to env":  func(r *RunInput) { r.Env = append(r.Env, "VERSION=1") },
		"workdir":                 func(r *RunInput) { r.WorkDir = "/" },
		"user":                    func(r *RunInput) { r.User = "root" },
		"network":                 func(r *RunInput) { r.Network = "none" },
		"mount content":           func(r *RunInput) { r.Mounts[0].Content = "sha256:ab" },
		"mount target":            func(r *RunInput) { r.Mounts[0].Target = "/x" },
		"heredoc script":          func(r *RunInput) { r.Files = []FileInput{{Name: "EOF", Data: "#!/bin/sh\necho two\n"}} },
		"secret env name":         func(r *RunInput) { r.Mounts[0].Env = "TOKEN" },
		"source date epoch":       func(r *RunInput) { e := int64(0); r.SourceDateEpoch = &e },
		"add host":                func(r *RunInput) { r.Hosts = []string{"db:10.0.0.5"} },
		"shm size":                func(r *RunInput) { r.ShmSize = 1 << 30 },
		"ulimit":                  func(r *RunInput) { r.Ulimits = []string{"nofile=1024:2048"} },
	}
	base := RunKey(baseRun())
	for name, mod := range runMods {
		t.Run("run/"+name, func(t *testing.T) {
			r := baseRun()
			mod(&r)
			if RunKey(r) == base {
				t.Errorf("changing %s kept key %s", name, base)
			}
		})
	}
	copyMods := map[string]func(*CopyInput){
		"parent":       func(c *CopyInput) { c.Parent = ImageKey("sha256:x") },
		"file content": func(c *CopyInput) { c.Content = "sha256:bc" },
		"sources":      func(c *CopyInput) { c.Sources = []string{"a.txt"} },
		"dest":         func(c *CopyInput) { c.Dest = "/app2/" },
		"chown":        func(c *CopyInput) { c.Chown = "0:0" },
		"chmod":        func(c *CopyInput) { c.Chmod = "0755" },
		"link":         func(c *CopyInput) { c.Link = true },
		"add":          func(c *CopyInput) { c.Add = true },
		"epoch":        func(c *CopyInput) { e := int64(1700000000); c.SourceDateEpoch = &e },
	}
	cbase := CopyKey(baseCopy())
	for name, mod := range copyMods {
		t.Run("copy/"+name, func(t *testing.T) {
			c := baseCopy()
			mod(&c)
			if CopyKey(c) == cbase {
				t.Errorf("changing %s kept key %s", name, cbase)
			}
		})
	}
	if RunKey(RunInput{Parent: ScratchKey("")}) == CopyKey(CopyInput{Parent: ScratchKey("")}) {
		t.Errorf("a RUN and a COPY with empty inputs share a key")
	}
}

// TestScratchKeyPlatform: the platform decides the scratch key, and so
// every key above it.
func TestScratchKeyPlatform(t *testing.T) {
	seen := map[Key]string{}
	for _, p := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/s390x"} {
		k := ScratchKey(p)
		if o, ok := seen[k]; ok {
			t.Errorf("%s and %s share the scratch key %s", o, p, k)
		}
		seen[k] = p
	}
	if RunKey(RunInput{Parent: ScratchKey("linux/arm64")}) == RunKey(RunInput{Parent: ScratchKey("linux/amd64")}) {
		t.Errorf("a RUN on arm64 and on amd64 share a key")
	}
}

func TestKeyHex(t *testing.T) {
	k := ScratchKey("")
	if got := k.Hex(); len(got) != 64 || "sha256:"+got != string(k) {
		t.Errorf("Hex() = %q for %q", got, k)
	}
}

// Pinned digests of the fixed inputs above (computed once, kept forever).
const (
	scratchHex = "3b4a2f4234c4e885b546adf91888b277ba9c82e5a6a322d3b78d86b0da014c6b"
	runHex     = "8259700714eb65e07a350f7f3c9f4ae544b0f8f2040f0087740532202a3e182e"
	copyHex    = "365198e8a71a72fbf9adcd8d466a4ca632d27950703a3d4921d04f7a345251e6"
)

// TestImageKeyOn: an image whose config names no platform keys on the
// platform it is built for, except the default one, whose key stays
// ImageKey's (the caches made before keep hitting).
func TestImageKeyOn(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	if ImageKeyOn(d, "") != ImageKey(d) || ImageKeyOn(d, DefaultPlatform) != ImageKey(d) {
		t.Error("ImageKeyOn with no or the default platform differs from ImageKey")
	}
	if arm := ImageKeyOn(d, "linux/arm64"); arm == ImageKey(d) || arm == ImageKeyOn(d, "linux/arm/v7") {
		t.Error("ImageKeyOn of linux/arm64 equals another platform's key")
	}
}
