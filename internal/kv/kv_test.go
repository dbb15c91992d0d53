package kv

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{in: "type=local,dest=/c", want: map[string]string{"type": "local", "dest": "/c"}},
		{in: `type=oci,"name=a:1,b:2"`, want: map[string]string{"type": "oci", "name": "a:1,b:2"}},
		{in: "Type=gha, Scope=Main=x", want: map[string]string{"type": "gha", "scope": "Main=x"}},
		{in: "type=oci,dest", wantErr: `field "dest" is not key=value`},
		{in: "a=1,A=2", wantErr: `"a" given twice`},
		{in: `a="x`, wantErr: "CSV"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) = %v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !cmp.Equal(got, tt.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}
