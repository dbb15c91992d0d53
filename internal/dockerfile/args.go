package dockerfile

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/internal/plan"
)

// argScope is an ordered set of ARG names and their values. An ARG
// declared without a value (and with no --build-arg or global value) is in
// scope but unset: it expands to "" and is not in RUN's environment.
type argScope struct {
	keys []string
	vals map[string]string
	set  map[string]bool
}

func newArgScope() *argScope {
	return &argScope{vals: map[string]string{}, set: map[string]bool{}}
}

func (a *argScope) clone() *argScope {
	c := newArgScope()
	c.keys = slices.Clone(a.keys)
	for k, v := range a.vals {
		c.vals[k] = v
	}
	for k, v := range a.set {
		c.set[k] = v
	}
	return c
}

// declare puts key in scope, keeping its place if it is already there.
func (a *argScope) declare(key string) {
	if _, ok := a.set[key]; !ok {
		a.keys = append(a.keys, key)
		a.set[key] = false
	}
}

// put declares key with a value.
func (a *argScope) put(key, value string) {
	a.declare(key)
	a.vals[key] = value
	a.set[key] = true
}

// Get implements shell.EnvGetter.
func (a *argScope) Get(key string) (string, bool) {
	if !a.set[key] {
		return "", false
	}
	return a.vals[key], true
}

// Keys implements shell.EnvGetter.
func (a *argScope) Keys() []string {
	var out []string
	for _, k := range a.keys {
		if a.set[k] {
			out = append(out, k)
		}
	}
	return out
}

// env is what ARG and ENV references expand against inside a stage: the
// config's Env, then the ARGs in scope. ENV wins over an ARG of the same
// name, as Docker documents.
type env struct {
	config func() []string // the config's Env, built on demand
	vars   envVars
	args   *argScope
}

// Get implements shell.EnvGetter.
func (e env) Get(key string) (string, bool) {
	if v, ok := e.vars.get(key); ok {
		return v, true
	}
	return e.args.Get(key)
}

// Keys implements shell.EnvGetter.
func (e env) Keys() []string {
	var out []string
	seen := map[string]bool{}
	for _, kv := range e.config() {
		k, _, _ := strings.Cut(kv, "=")
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, k := range e.args.Keys() {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// list is the environment of a RUN: the config's Env in order, then the
// set ARGs the config does not override, in declaration order.
func (e env) list() []string {
	out := e.config()
	for _, k := range e.args.Keys() {
		if _, ok := e.vars.get(k); ok {
			continue
		}
		out = append(out, k+"="+e.args.vals[k])
	}
	return out
}

// envVars is what lookupEnv finds in a config's Env as ENV changes it
// (plan.Config.WithEnv): the last entry of a key wins, and a key the base
// lists twice keeps its last entry's value, since setting it replaces the
// first. It belongs to one stage's dispatch, never to a step.
type envVars struct {
	vals   map[string]string
	pinned map[string]bool // keys the base lists more than once
}

func newEnvVars(base []string) envVars {
	v := envVars{vals: make(map[string]string, len(base)), pinned: map[string]bool{}}
	for _, kv := range base {
		k, val, _ := strings.Cut(kv, "=")
		if _, ok := v.vals[k]; ok {
			v.pinned[k] = true
		}
		v.vals[k] = val
	}
	return v
}

func (v envVars) get(key string) (string, bool) {
	val, ok := v.vals[key]
	return val, ok
}

func (v envVars) set(key, value string) {
	if !v.pinned[key] {
		v.vals[key] = value
	}
}

// predefinedArgs are the args BuildKit defines in the global scope. Like
// any global ARG, a stage sees them only after declaring them (ARG
// TARGETARCH). A --build-arg of the same name overrides them.
func (p *planner) predefinedArgs(target string) *argScope {
	b, t := p.opts.BuildPlatform, p.opts.Platform
	if target == "" {
		target = "default"
	}
	a := newArgScope()
	for _, kv := range [...][2]string{
		{"BUILDPLATFORM", plan.FormatPlatform(b)},
		{"BUILDOS", b.OS},
		{"BUILDOSVERSION", b.OSVersion},
		{"BUILDARCH", b.Architecture},
		{"BUILDVARIANT", b.Variant},
		{"TARGETPLATFORM", plan.FormatPlatform(t)},
		{"TARGETOS", t.OS},
		{"TARGETOSVERSION", t.OSVersion},
		{"TARGETARCH", t.Architecture},
		{"TARGETVARIANT", t.Variant},
		{"TARGETSTAGE", target},
	} {
		v := kv[1]
		if o, ok := p.opts.BuildArgs[kv[0]]; ok {
			v = o
			p.declared[kv[0]] = true
		}
		a.put(kv[0], v)
	}
	return a
}

// globalArgs builds the global scope: the predefined args, then each ARG
// before the first FROM, where --build-arg beats the default and a
// default may refer to the ARGs above it.
func (p *planner) globalArgs(target string) error {
	p.declared = map[string]bool{}
	p.global = p.predefinedArgs(target)
	for _, c := range p.meta {
		ac := c.cmd.(*instructions.ArgCommand)
		for _, kv := range ac.Args {
			p.declared[kv.Key] = true
			if v, ok := p.opts.BuildArgs[kv.Key]; ok {
				p.global.put(kv.Key, v)
				continue
			}
			if kv.Value == nil {
				continue
			}
			v, _, err := p.lex.ProcessWord(*kv.Value, p.global)
			if err != nil {
				return p.errAt(c.line, err)
			}
			p.global.put(kv.Key, v)
		}
	}
	return nil
}

// dispatchArg declares the ARGs of an ARG instruction inside a stage. The
// value is, in order of preference: the --build-arg, the default
// (expanded), the global scope's value when the ARG has no default.
func (p *planner) dispatchArg(st *state, c *instructions.ArgCommand) error {
	for _, kv := range c.Args {
		p.declared[kv.Key] = true
		if v, ok := p.opts.BuildArgs[kv.Key]; ok {
			st.args.put(kv.Key, v)
			continue
		}
		if kv.Value != nil {
			v, _, err := p.lex.ProcessWord(*kv.Value, st.env())
			if err != nil {
				return fmt.Errorf("expanding ARG %s: %w", kv.Key, err)
			}
			st.args.put(kv.Key, v)
			continue
		}
		if v, ok := p.global.Get(kv.Key); ok {
			st.args.put(kv.Key, v)
			continue
		}
		st.args.declare(kv.Key)
	}
	return nil
}

// unusedArgs are the --build-arg names no ARG declared, sorted.
func (p *planner) unusedArgs() []string {
	var out []string
	for k := range p.opts.BuildArgs {
		if !p.declared[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
