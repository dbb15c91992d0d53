package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/build"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/store"
)

func newPruneCmd(env Env, g *globals) *cobra.Command {
	var all bool
	var keep string
	c := &cobra.Command{
		Use:   "prune [--all] [--keep-storage SIZE]",
		Short: "Free space in the local state store",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if !all && keep == "" {
				return usagef("prune: give --all or --keep-storage SIZE")
			}
			var keepBytes int64
			if keep != "" {
				n, err := parseSize(keep)
				if err != nil {
					return usagef("--keep-storage %q: %v", keep, err)
				}
				keepBytes = n
			}
			root := stateDir(env.Getenv)
			rep, err := build.Prune(c.Context(), root, store.PruneOptions{All: all, KeepBytes: keepBytes})
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "removed %d records, %d blobs, %d snapshots; freed %s, kept %s\n",
				rep.Records, rep.Blobs, rep.Snapshots, progress.HumanBytes(rep.Freed), progress.HumanBytes(rep.Kept))
			return nil
		},
	}
	c.Flags().BoolVar(&all, "all", false, "remove everything")
	c.Flags().StringVar(&keep, "keep-storage", "", "remove least recently used results until the store is at most SIZE (e.g. 10GB, 512MB)")
	return c
}

// parseSize parses sizes such as 10GB, 512MB, 1.5G, 1024 (bytes). Units are
// powers of 1024, as docker and buildx use them.
func parseSize(s string) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, unit := range []struct {
		suffix string
		mult   int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(u, unit.suffix) {
			u, mult = strings.TrimSuffix(u, unit.suffix), unit.mult
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(u), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("want a size such as 10GB or 512MB")
	}
	return int64(f * float64(mult)), nil
}
