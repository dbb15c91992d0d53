package cache

import (
	"fmt"
	"reflect"
	"testing"
)

// keyExempt lists key-input fields that deliberately do not change the key
// when changed alone, each with the reason. It is empty today: every field
// of every input struct decides a key.
var keyExempt = map[string]string{}

// TestKeyCoversEveryField changes, by reflection, every field of every key
// input struct (nested mounts and files too) and requires a different key
// and a different digest among the record's inputs. A field added to an
// input struct is covered without touching this test; one that does not
// reach the key fails it.
func TestKeyCoversEveryField(t *testing.T) {
	epoch := int64(1700000000)
	run := baseRun()
	run.Files = []FileInput{{Name: "script", Data: "echo hi"}}
	run.Mounts[0] = MountInput{Type: "cache", Target: "/c", Source: "s", ID: "id", Content: "sha256:aa", Mode: 0o755, UID: 1, GID: 2, Env: "E"}
	run.SourceDateEpoch = &epoch
	run.Mkdirs = []DirInput{{Dir: "/app", User: "app"}}
	cp := baseCopy()
	cp.SourceDateEpoch = &epoch
	cp.Mkdirs = []DirInput{{Dir: "/app", User: "app"}}

	type keyed struct {
		key    func(v reflect.Value) Key
		inputs func(v reflect.Value) []Input
		parent func(v reflect.Value) Key
	}
	kinds := map[string]keyed{
		"RunInput": {
			key:    func(v reflect.Value) Key { return RunKey(v.Interface().(RunInput)) },
			inputs: func(v reflect.Value) []Input { return v.Interface().(RunInput).Inputs() },
			parent: func(v reflect.Value) Key { return v.Interface().(RunInput).Parent },
		},
		"CopyInput": {
			key:    func(v reflect.Value) Key { return CopyKey(v.Interface().(CopyInput)) },
			inputs: func(v reflect.Value) []Input { return v.Interface().(CopyInput).Inputs() },
			parent: func(v reflect.Value) Key { return v.Interface().(CopyInput).Parent },
		},
		"MkdirInput": {
			key:    func(v reflect.Value) Key { return MkdirKey(v.Interface().(MkdirInput)) },
			inputs: func(v reflect.Value) []Input { return v.Interface().(MkdirInput).Inputs() },
			parent: func(v reflect.Value) Key { return v.Interface().(MkdirInput).Parent },
		},
	}
	mk := MkdirInput{Parent: ScratchKey(""), Dir: "/app", User: "app", SourceDateEpoch: &epoch}
	for name, base := range map[string]any{"RunInput": run, "CopyInput": cp, "MkdirInput": mk} {
		k := kinds[name]
		bv := reflect.ValueOf(base)
		baseKey, baseInputs := k.key(bv), k.inputs(bv)
		n := 0
		forEachField(bv, name, func(path string, set func(reflect.Value)) {
			n++
			if why, ok := keyExempt[path]; ok {
				t.Logf("%s: exempt (%s)", path, why)
				return
			}
			v := reflect.New(bv.Type()).Elem()
			v.Set(deepCopy(bv))
			set(v)
			if k.key(v) == baseKey {
				t.Errorf("changing %s leaves the key unchanged", path)
			}
			if path == name+".Parent" {
				if k.parent(v) == k.parent(bv) {
					t.Errorf("changing %s leaves the record's parent unchanged", path)
				}
				return
			}
			if fmt.Sprint(k.inputs(v)) == fmt.Sprint(baseInputs) {
				t.Errorf("changing %s leaves every input digest unchanged", path)
			}
		})
		want := 8
		if name == "MkdirInput" {
			want = 4
		}
		if n < want {
			t.Errorf("%s: only %d fields visited", name, n)
		}
	}
}

// forEachField calls fn for every leaf field reachable from v (a struct),
// with a setter that changes that field in a copy rooted like v.
func forEachField(v reflect.Value, path string, fn func(path string, set func(root reflect.Value))) {
	walkField(v, path, func(root reflect.Value) reflect.Value { return root }, fn)
}

func walkField(v reflect.Value, path string, at func(root reflect.Value) reflect.Value, fn func(string, func(reflect.Value))) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			i := i
			walkField(v.Field(i), path+"."+v.Type().Field(i).Name,
				func(root reflect.Value) reflect.Value { return at(root).Field(i) }, fn)
		}
	case reflect.Slice:
		if v.Len() > 0 && v.Type().Elem().Kind() == reflect.Struct {
			walkField(v.Index(0), path+"[0]", func(root reflect.Value) reflect.Value { return at(root).Index(0) }, fn)
			return
		}
		fn(path, func(root reflect.Value) { f := at(root); f.Set(changed(f)) })
	default:
		fn(path, func(root reflect.Value) { f := at(root); f.Set(changed(f)) })
	}
}

// changed returns a value of v's type that differs from v.
func changed(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.String:
		return reflect.ValueOf(v.String() + "x").Convert(v.Type())
	case reflect.Bool:
		return reflect.ValueOf(!v.Bool())
	case reflect.Int64:
		return reflect.ValueOf(v.Int() + 1)
	case reflect.Pointer:
		if v.IsNil() {
			p := reflect.New(v.Type().Elem())
			return p
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(changed(v.Elem()))
		return p
	case reflect.Slice:
		out := reflect.MakeSlice(v.Type(), 0, v.Len()+1)
		out = reflect.AppendSlice(out, v)
		return reflect.Append(out, reflect.Zero(v.Type().Elem()).Convert(v.Type().Elem()))
	}
	panic("keyfields: no way to change a " + v.Kind().String())
}

// deepCopy copies v so that changing a slice element of the copy leaves v
// alone.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		for i := 0; i < v.NumField(); i++ {
			out.Field(i).Set(deepCopy(v.Field(i)))
		}
		return out
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(deepCopy(v.Elem()))
		return p
	}
	return v
}
