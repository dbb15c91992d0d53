package build

import (
	"github.com/kiln-build/kiln/internal/output"
)

func hasRegistryOutput(outs []output.Spec) bool {
	for _, o := range outs {
		if o.Type == output.Registry {
			return true
		}
	}
	return false
}

func namedRegistryOutput(outs []output.Spec) bool {
	for _, o := range outs {
		if (o.Type == output.Registry || o.Type == output.Image) && o.Name != "" {
			return true
		}
	}
	return false
}
