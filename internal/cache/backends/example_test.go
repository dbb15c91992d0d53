package backends_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/backends"
	"github.com/kiln-build/kiln/internal/cache/cachetest"
)

// The table parses --cache-to and --cache-from values as a user types
// them and makes their exporters and importers; an export then an import
// of the same directory gives the records back.
func ExampleTable() {
	dir, _ := os.MkdirTemp("", "kiln-example")
	defer os.RemoveAll(dir)
	cacheDir := filepath.Join(dir, "cache")
	table := backends.Table(cache.Deps{})

	exports, err := table.ParseExports([]string{"type=local,dest=" + cacheDir + ",mode=max"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(exports[0].Options.Mode)

	src := cachetest.NewBlobs()
	m := cachetest.RandomManifest(src, 1, 2)
	if err := exports[0].Exporter.Export(context.Background(), m, src); err != nil {
		fmt.Println(err)
		return
	}
	imports, _ := table.ParseImports([]string{"type=local,src=" + cacheDir})
	got, _, err := imports[0].Importer.Import(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(got.Records), "records,", len(got.Layers()), "layers")

	_, err = table.ParseExports([]string{"type=local,dest=" + cacheDir + ",colour=blue"})
	fmt.Println(err)
	// Output:
	// max
	// 2 records, 2 layers
	// --cache-to: cache type=local: unknown attribute "colour"
}

// A spec's name in messages hides its secret attributes.
func ExampleTable_secrets() {
	table := backends.Table(cache.Deps{})
	imports, err := table.ParseImports([]string{"type=gha,url=http://127.0.0.1:9/,token=s3cr3t,scope=main"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(imports[0].Name)
	// Output:
	// type=gha,scope=main,token=***,url=http://127.0.0.1:9/
}
