package output_test

import (
	"fmt"

	"github.com/kiln-build/kiln/internal/output"
)

func ExampleParseSpec() {
	for _, s := range []string{
		"type=oci,dest=out.tar",
		"type=image,push=true,name=ghcr.io/o/app:1",
		"build/rootfs",
		"type=oci",
	} {
		spec, err := output.ParseSpec(s)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Printf("%s dest=%q push=%v names=%v\n", spec.Type, spec.Dest, spec.Push, spec.Names())
	}
	// Output:
	// oci dest="out.tar" push=false names=[]
	// registry dest="" push=true names=[ghcr.io/o/app:1]
	// local dest="build/rootfs" push=false names=[]
	// error: output: type=oci needs attribute "dest"
}
