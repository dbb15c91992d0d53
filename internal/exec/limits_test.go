package exec

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseHost(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "db:10.0.0.5", want: "db:10.0.0.5"},
		{in: "db=10.0.0.5", want: "db:10.0.0.5"},
		{in: "v6:::1", want: "v6:::1"},
		{in: "v6:[fd00::7]", want: "v6:fd00::7"},
		{in: "v6=fd00::7", want: "v6:fd00::7"},
		{in: "gw:host-gateway", wantErr: "host-gateway is not supported: RUN steps have their own network namespace"},
		{in: "db:nothere", wantErr: `"nothere" is not an IP address`},
		{in: "db", wantErr: "want HOST:IP"},
		{in: ":10.0.0.5", wantErr: "want HOST:IP"},
		{in: "a b:10.0.0.5", wantErr: "holds a space"},
	}
	for _, tc := range tests {
		h, err := ParseHost(tc.in)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseHost(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("ParseHost(%q): %v", tc.in, err)
		case h.String() != tc.want:
			t.Errorf("ParseHost(%q) = %s, want %s", tc.in, h, tc.want)
		}
	}
}

func TestParseUlimit(t *testing.T) {
	tests := []struct {
		in      string
		want    Ulimit
		wantErr string
	}{
		{in: "nofile=1024:2048", want: Ulimit{Name: "nofile", Soft: 1024, Hard: 2048}},
		{in: "nproc=512", want: Ulimit{Name: "nproc", Soft: 512, Hard: 512}},
		{in: "core=-1", want: Ulimit{Name: "core", Soft: Unlimited, Hard: Unlimited}},
		{in: "memlock=64:-1", want: Ulimit{Name: "memlock", Soft: 64, Hard: Unlimited}},
		{in: "nofile=2048:1024", wantErr: "soft limit 2048 is above the hard limit 1024"},
		{in: "nofile=-1:1024", wantErr: "above the hard limit"},
		{in: "files=10", wantErr: `unknown limit "files" (want one of as, core,`},
		{in: "nofile=ten", wantErr: `"ten" is not a number`},
		{in: "nofile=1:x", wantErr: `"x" is not a number`},
		{in: "nofile", wantErr: "want NAME=SOFT[:HARD]"},
		{in: "nofile=", wantErr: "want NAME=SOFT[:HARD]"},
	}
	for _, tc := range tests {
		u, err := ParseUlimit(tc.in)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseUlimit(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("ParseUlimit(%q): %v", tc.in, err)
		case u != tc.want:
			t.Errorf("ParseUlimit(%q) = %+v, want %+v", tc.in, u, tc.want)
		}
	}
	if got, want := (Ulimit{Name: "memlock", Soft: 64, Hard: Unlimited}).String(), "memlock=64:-1"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestConfigLimits checks that ulimits become OCI rlimits (one for nofile
// replacing the default) and that the shm size reaches /dev/shm.
func TestConfigLimits(t *testing.T) {
	in := configInput{spec: Spec{Root: "/r", Args: []string{"true"}, Cwd: "/", ShmSize: 1 << 30,
		Ulimits: []Ulimit{{Name: "nproc", Soft: 10, Hard: 20}, {Name: "nofile", Soft: 1024, Hard: 2048}}},
		hostsFile: "/b/hosts", nofile: 4096}
	c := configFor(in)
	want := []specs.POSIXRlimit{
		{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 2048},
		{Type: "RLIMIT_NPROC", Soft: 10, Hard: 20},
	}
	if diff := cmp.Diff(want, c.Process.Rlimits); diff != "" {
		t.Errorf("rlimits (-want +got):\n%s", diff)
	}
	var shm []string
	for _, m := range c.Mounts {
		if m.Destination == "/dev/shm" {
			shm = m.Options
		}
	}
	if !strings.Contains(strings.Join(shm, ","), "size=1073741824") {
		t.Errorf("/dev/shm options = %v, want size=1073741824", shm)
	}
	in.spec.ShmSize, in.spec.Ulimits = 0, nil
	c = configFor(in)
	if got := c.Process.Rlimits; len(got) != 1 || got[0].Soft != 4096 {
		t.Errorf("default rlimits = %v, want RLIMIT_NOFILE 4096 only", got)
	}
	for _, m := range c.Mounts {
		if m.Destination == "/dev/shm" && !strings.Contains(strings.Join(m.Options, ","), "size=67108864") {
			t.Errorf("default /dev/shm options = %v, want 64 MiB", m.Options)
		}
	}
}

// TestCheckRaise: a hard limit above kiln's own is refused with one line
// when kiln cannot raise it, and left to the runtime when it can.
func TestCheckRaise(t *testing.T) {
	own := func(int) (uint64, error) { return 1024, nil }
	ul := []Ulimit{{Name: "nofile", Soft: 512, Hard: 1024}, {Name: "nproc", Soft: 10, Hard: Unlimited}}
	err := checkRaise(ul, false, own)
	want := "--ulimit nproc=10:-1: the hard limit unlimited is above kiln's own (1024), and kiln lacks CAP_SYS_RESOURCE to raise it"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	if err := checkRaise(ul, true, own); err != nil {
		t.Errorf("with CAP_SYS_RESOURCE: %v", err)
	}
	if err := checkRaise(ul[:1], false, own); err != nil {
		t.Errorf("within kiln's own limit: %v", err)
	}
}

// TestRunUlimitAboveOwn: a real step asked for more than kiln's own hard
// limit either gets it (kiln has CAP_SYS_RESOURCE) or fails before the
// runtime starts, naming the limit.
func TestRunUlimitAboveOwn(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		own, err := hardLimit(ulimitResources["nproc"])
		if err != nil || own == Unlimited {
			t.Skipf("nproc hard limit %d (%v): nothing above it", own, err)
		}
		spec := Spec{Runtime: rt, Args: []string{"/bin/sh", "-c", "grep '^Max processes' /proc/self/limits"},
			Ulimits: []Ulimit{{Name: "nproc", Soft: own, Hard: Unlimited}}}
		out, _, err := run(t, spec)
		if hasCap(capSysResource) {
			if err != nil || !strings.Contains(out, "unlimited") {
				t.Errorf("with CAP_SYS_RESOURCE: %q, %v; want an unlimited hard limit", out, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), "--ulimit nproc=") || !strings.Contains(err.Error(), "lacks CAP_SYS_RESOURCE") {
			t.Errorf("without CAP_SYS_RESOURCE: %v, want the one-line refusal", err)
		}
	})
}
