package dockerfile_test

import (
	"context"
	"fmt"

	"github.com/kiln-build/kiln/internal/dockerfile"
)

func ExamplePlan() {
	df := []byte(`FROM scratch AS build
ARG VERSION=dev
WORKDIR /src
RUN echo $VERSION > version

FROM scratch
COPY --from=build /src/version .
CMD ["cat", "version"]
`)
	g, err := dockerfile.Plan(context.Background(), df, dockerfile.Options{
		BuildArgs: map[string]string{"VERSION": "1.2.3"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range g.Stages {
		for _, st := range s.Steps {
			fmt.Printf("[%d/%d] %s: %s\n", st.Number, g.Steps, s.Label(), st.Text)
		}
	}
	run := g.Stages[0].Steps[2].Run
	fmt.Println(run.Args, run.WorkDir, run.Env[1])
	fmt.Println(g.Target.Steps[0].Copy.Dest, g.Target.Config.Cmd)

	_, err = dockerfile.Plan(context.Background(), []byte("FROM scratch\nRUN --mount=type=ssh true\n"), dockerfile.Options{})
	fmt.Println(err)
	// Output:
	// [1/5] build: ARG VERSION=dev
	// [2/5] build: WORKDIR /src
	// [3/5] build: RUN echo $VERSION > version
	// [4/5] stage-1: COPY --from=build /src/version .
	// [5/5] stage-1: CMD ["cat", "version"]
	// [/bin/sh -c echo $VERSION > version] /src VERSION=1.2.3
	// / [cat version]
	// Dockerfile:2: RUN --mount=type=ssh is not supported
}
