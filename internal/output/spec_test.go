package output

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Spec
		wantErr string // substring; the offending key must be named
	}{
		{in: "type=registry", want: Spec{Type: Registry, Push: true}},
		{in: "type=registry,name=reg.example/img:1", want: Spec{Type: Registry, Push: true, Name: "reg.example/img:1"}},
		{in: "type=registry,push=false", want: Spec{Type: Registry, Push: true}},
		{in: "type=image,push=true,name=r/i:1", want: Spec{Type: Registry, Push: true, Name: "r/i:1"}},
		{in: "type=image,push=false", want: Spec{Type: Image}},
		{in: "type=image", want: Spec{Type: Image}},
		{in: "type=oci,dest=out.tar", want: Spec{Type: OCI, Dest: "out.tar"}},
		{in: "type=oci,dest=-", want: Spec{Type: OCI, Dest: "-"}},
		{in: `type=oci,dest=out.tar,"name=a:1,b:2"`, want: Spec{Type: OCI, Dest: "out.tar", Name: "a:1,b:2"}},
		{in: "type=docker,dest=f.tar", want: Spec{Type: Docker, Dest: "f.tar"}},
		{in: "type=docker,dest=-,name=app:dev", want: Spec{Type: Docker, Dest: "-", Name: "app:dev"}},
		{in: "type=local,dest=dir", want: Spec{Type: Local, Dest: "dir"}},
		{in: "Type=local,DEST=dir", want: Spec{Type: Local, Dest: "dir"}},
		{in: "out/dir", want: Spec{Type: Local, Dest: "out/dir"}},
		{in: "type=local,dest=a=b", want: Spec{Type: Local, Dest: "a=b"}},

		{in: "", wantErr: "empty"},
		{in: "-", wantErr: "type=oci,dest=-"},
		{in: "type=tar,dest=x", wantErr: `type="tar"`},
		{in: "dest=x", wantErr: "type="},
		{in: "type=oci", wantErr: `"dest"`},
		{in: "type=oci,dest=", wantErr: `"dest"`},
		{in: "type=docker,name=x", wantErr: `"dest"`},
		{in: "type=local", wantErr: `"dest"`},
		{in: "type=local,dest=-", wantErr: `"dest"`},
		{in: "type=local,dest=d,name=x", wantErr: `"name"`},
		{in: "type=oci,dest=x,compression=zstd", wantErr: `"compression"`},
		{in: "type=registry,dest=x", wantErr: `"dest"`},
		{in: "type=image,push=maybe", wantErr: `"push"`},
		{in: "type=registry,push=maybe", wantErr: `"push"`},
		{in: "type=oci,dest=a,dest=b", wantErr: `"dest" given twice`},
		{in: "type=oci,dest", wantErr: `field "dest" is not key=value`},
		{in: `type=oci,dest="x`, wantErr: "CSV"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSpec(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSpec(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSpec(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseSpec(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestSpecNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want []string
	}{
		{name: "", want: nil},
		{name: "a:1", want: []string{"a:1"}},
		{name: " a:1 , b:2,,", want: []string{"a:1", "b:2"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, Spec{Name: tt.name}.Names()); diff != "" {
			t.Errorf("Names(%q) (-want +got):\n%s", tt.name, diff)
		}
	}
}
