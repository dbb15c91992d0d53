package exec

import (
	"fmt"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// applySeccomp sets cfg's seccomp filter to Docker's default profile, as
// Docker and BuildKit apply it to every container and RUN step: syscalls
// outside an allow list fail with EPERM (ENOSYS for ones newer than the
// list), and the ones that need a capability the step lacks (unshare,
// mount, clone with namespace flags, keyctl, bpf, ptrace on older kernels
// and the rest) are denied. The profile is resolved against cfg's bounding
// capabilities and the running kernel, as Docker does, so it must be
// called after the capabilities are set.
func applySeccomp(cfg *specs.Spec) error {
	sc, err := seccomp.GetDefaultProfile(cfg)
	if err != nil {
		return fmt.Errorf("resolving the default seccomp profile: %w", err)
	}
	cfg.Linux.Seccomp = sc
	return nil
}
