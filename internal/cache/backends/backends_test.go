package backends

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/cache"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		from    []string
		to      []string
		wantErr string
		imports int
		exports int
	}{
		{name: "local both", from: []string{"type=local,src=/c"}, to: []string{"type=local,dest=/c,mode=max"}, imports: 1, exports: 1},
		{name: "quoted csv", from: []string{`type=local,"src=/a,b"`}, imports: 1},
		{name: "unknown type", from: []string{"type=nfs,src=/c"}, wantErr: `unknown cache type "nfs"`},
		{name: "missing type", to: []string{"dest=/c"}, wantErr: "type required"},
		{name: "unknown attribute", to: []string{"type=local,dest=/c,speed=fast"}, wantErr: `unknown attribute "speed"`},
		{name: "missing required", to: []string{"type=local,mode=max"}, wantErr: "dest: required"},
		{name: "bad mode", to: []string{"type=local,dest=/c,mode=all"}, wantErr: "mode"},
		{name: "not yet", to: []string{"type=s3,bucket=b"}, wantErr: "type=s3 is not supported yet"},
		{name: "gha without token", to: []string{"type=gha,url=http://127.0.0.1:1/"}, wantErr: "ACTIONS_RUNTIME_TOKEN"},
		{name: "gha without url", from: []string{"type=gha,token=t"}, wantErr: "ACTIONS_CACHE_URL"},
		{name: "gha", from: []string{"type=gha,token=t,url=http://127.0.0.1:1/"}, to: []string{"type=gha,token=t,url=http://127.0.0.1:1/,mode=max"}, imports: 1, exports: 1},
		{name: "registry shorthand", from: []string{"reg/app:cache,reg/app:main"}, imports: 2},
		{name: "registry both", from: []string{"type=registry,ref=reg/app:c"}, to: []string{"type=registry,ref=reg/app:c,mode=max,compression=zstd"}, imports: 1, exports: 1},
		{name: "registry missing ref", to: []string{"type=registry,mode=max"}, wantErr: "ref: required"},
		{name: "registry bad ref", to: []string{"type=registry,ref=UPPER/Case:x:y"}, wantErr: "ref"},
		{name: "inline", to: []string{"type=inline"}, exports: 1},
		{name: "inline cannot import", from: []string{"type=inline"}, wantErr: "cannot be imported"},
		{name: "inline max", to: []string{"type=inline,mode=max"}, wantErr: "mode"},
		{name: "duplicate export", to: []string{"type=local,dest=/c", "type=local,dest=/c"}, wantErr: "given twice"},
		{name: "field without =", to: []string{"type=local,dest=/c,max"}, wantErr: `"max" is not key=value`},
		{name: "export attribute on import", from: []string{"type=local,src=/c,mode=max"}, wantErr: "mode: is a --cache-to attribute"},
		{name: "ignore-error on import", from: []string{"type=registry,ref=reg/app:c,ignore-error=true"}, imports: 1},
		{name: "inline compression", to: []string{"type=inline,compression=zstd"}, exports: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table := Table(cache.Deps{})
			imps, err1 := table.ParseImports(tt.from)
			exps, err2 := table.ParseExports(tt.to)
			err := err1
			if err == nil {
				err = err2
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(imps) != tt.imports || len(exps) != tt.exports {
				t.Errorf("got %d imports, %d exports; want %d, %d", len(imps), len(exps), tt.imports, tt.exports)
			}
		})
	}
}

// TestBackendAttrs: every attribute a backend lists is one it accepts in
// some direction (never "unknown attribute"), its secret attributes are
// among them, and an attribute it does not list is refused by name.
func TestBackendAttrs(t *testing.T) {
	env := map[string]string{"ACTIONS_RUNTIME_TOKEN": "t", "ACTIONS_CACHE_URL": "http://127.0.0.1:1/"}
	table := Table(cache.Deps{Getenv: func(k string) string { return env[k] }})
	// required are the attributes a valid spec of each type and direction
	// needs, so that what is refused is the attribute under test.
	required := map[string][2]map[string]string{
		"local":    {{"src": "/c"}, {"dest": "/c"}},
		"registry": {{"ref": "r/a"}, {"ref": "r/a"}},
	}
	for _, b := range All() {
		if b.Unsupported != "" {
			continue
		}
		for _, s := range b.Secret {
			if !slices.Contains(b.Attrs, s) {
				t.Errorf("type=%s: secret attribute %q is not in Attrs", b.Type, s)
			}
		}
		parse := func(dir int, attr string) error {
			attrs := maps.Clone(required[b.Type][dir])
			if attrs == nil {
				attrs = map[string]string{}
			}
			if _, given := attrs[attr]; !given {
				attrs[attr] = "x"
			}
			spec := cache.Spec{Type: b.Type, Attrs: attrs, Raw: "type=" + b.Type}
			if dir == 0 {
				if b.ParseImport == nil {
					return errors.New("unknown attribute (no import)")
				}
				_, err := table.ParseImport(spec)
				return err
			}
			if b.ParseExport == nil {
				return errors.New("unknown attribute (no export)")
			}
			_, err := table.ParseExport(spec)
			return err
		}
		unknown := func(attr string) (n int, errs []error) {
			for dir := 0; dir < 2; dir++ {
				err := parse(dir, attr)
				errs = append(errs, err)
				if err != nil && strings.Contains(err.Error(), "unknown attribute") {
					n++
				}
			}
			return n, errs
		}
		for _, a := range b.Attrs {
			if n, errs := unknown(a); n == 2 {
				t.Errorf("type=%s: listed attribute %q is unknown to its parser: %v", b.Type, a, errs)
			}
		}
		if n, errs := unknown("no-such-attr"); n != 2 {
			t.Errorf("type=%s: an unlisted attribute was not refused as unknown: %v", b.Type, errs)
		}
	}
}
