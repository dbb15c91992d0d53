package cli

import (
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/exec"
)

// newBinfmtCmd is `kiln binfmt [--install]`: it shows the binfmt_misc
// handlers that let RUN steps of other architectures run under QEMU, and
// with --install registers qemu-user-static's handlers with the F flag.
// Nothing else in kiln registers handlers.
func newBinfmtCmd(env Env) *cobra.Command {
	var install bool
	c := &cobra.Command{
		Use:   "binfmt [--install]",
		Short: "Show (or --install) the QEMU binfmt_misc handlers foreign-architecture RUN steps need",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			dir := env.Getenv("KILN_BINFMT_DIR")
			if dir == "" {
				dir = exec.BinfmtDir
			}
			if install {
				regs, err := exec.Install(dir, exec.BinfmtConfDir, runtime.GOARCH)
				for _, r := range regs {
					what := "registered"
					if r.Already {
						what = "already registered"
					}
					fmt.Fprintf(env.Stdout, "%s\t%s\t%s\t%s\n", r.Name, strings.Join(r.Archs, ","), r.Interpreter, what)
				}
				if err != nil {
					return err
				}
			}
			return showBinfmt(env, dir)
		},
	}
	c.Flags().BoolVar(&install, "install", false, "register qemu-user-static's handlers (Debian: apt-get install qemu-user-static) with the F flag; needs root")
	return c
}

// showBinfmt prints, per architecture kiln can emulate, whether RUN steps
// for it can run here.
func showBinfmt(env Env, dir string) error {
	hs, err := exec.Handlers(dir)
	if err != nil {
		return err
	}
	archs := exec.Archs()
	slices.Sort(archs)
	for _, a := range archs {
		state := "no handler"
		switch {
		case exec.Native(runtime.GOARCH, a):
			state = "native"
		default:
			for _, h := range hs {
				if h.Enabled && h.Takes(a) {
					if h.FixBinary() {
						state = fmt.Sprintf("emulated: %s (%s, flags %s)", h.Name, h.Interpreter, h.Flags)
						break
					}
					state = fmt.Sprintf("handler %s lacks the F flag: not usable in containers", h.Name)
				}
			}
		}
		fmt.Fprintf(env.Stdout, "linux/%s\t%s\n", a, state)
	}
	return nil
}
