package source

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// ChmodError is a --chmod value ParseChmod refuses.
type ChmodError struct {
	// Value is the --chmod value as written.
	Value string
	// Reason says what is wrong with a symbolic mode; "" for an octal one.
	Reason string
}

// Error reads as BuildKit's message for the same value, with the reason.
func (e *ChmodError) Error() string {
	msg := fmt.Sprintf("invalid chmod parameter: '%s'. it should be octal string and between 0 and 07777", e.Value)
	if e.Reason != "" {
		msg += ", or a symbolic mode (" + e.Reason + ")"
	}
	return msg
}

// Chmod is a COPY --chmod value: an octal mode ("0755", "4755") or a
// symbolic one as chmod(1) takes it ("u+x", "g-w,o=r", "+X", "a=rwx,u-w"),
// as BuildKit accepts both. A symbolic mode with no who letters applies to
// all classes, with no umask.
type Chmod struct {
	octal   bool
	mode    uint32 // the octal mode, permission and special bits
	clauses []clause
}

// clause is one comma-separated part of a symbolic mode: who letters and
// one or more operations.
type clause struct {
	who uint32 // the bits the clause may touch
	ops []op
}

type op struct {
	op    byte   // '+', '-' or '='
	perm  string // letters of rwxXst, or one of u, g, o
	class bool   // perm names a class to copy (u, g or o)
}

// ParseChmod parses a --chmod value; "" is nil (keep the sources' modes).
func ParseChmod(s string) (*Chmod, error) {
	if s == "" {
		return nil, nil
	}
	if s[0] >= '0' && s[0] <= '9' {
		n, err := strconv.ParseUint(s, 8, 32)
		if err != nil || n > 0o7777 {
			return nil, &ChmodError{Value: s}
		}
		return &Chmod{octal: true, mode: uint32(n)}, nil
	}
	c := &Chmod{}
	for _, part := range strings.Split(s, ",") {
		cl, err := parseClause(part)
		if err != nil {
			return nil, &ChmodError{Value: s, Reason: err.Error()}
		}
		c.clauses = append(c.clauses, cl)
	}
	return c, nil
}

func parseClause(s string) (clause, error) {
	var cl clause
	i := 0
	for ; i < len(s) && strings.IndexByte("ugoa", s[i]) >= 0; i++ {
		switch s[i] {
		case 'u':
			cl.who |= 0o4700
		case 'g':
			cl.who |= 0o2070
		case 'o':
			cl.who |= 0o1007
		case 'a':
			cl.who |= 0o7777
		}
	}
	if cl.who == 0 {
		cl.who = 0o7777
	}
	if i == len(s) {
		return cl, fmt.Errorf("%q has no operation", s)
	}
	for i < len(s) {
		o := op{op: s[i]}
		if strings.IndexByte("+-=", o.op) < 0 {
			return cl, fmt.Errorf("%q: unexpected %q", s, s[i])
		}
		i++
		j := i
		for ; j < len(s) && strings.IndexByte("+-=", s[j]) < 0; j++ {
		}
		o.perm = s[i:j]
		switch {
		case o.perm == "u" || o.perm == "g" || o.perm == "o":
			o.class = true
		case strings.Trim(o.perm, "rwxXst") != "":
			return cl, fmt.Errorf("%q: unknown permission in %q", s, o.perm)
		}
		cl.ops = append(cl.ops, o)
		i = j
	}
	return cl, nil
}

// Octal reports whether the mode is octal: then it also applies to the
// directories a COPY creates.
func (c *Chmod) Octal() bool { return c.octal }

// Apply returns m with its permission and special bits set by the mode
// (file type bits kept). For a symbolic mode, X adds execute only to a
// directory or to a file some class may already execute.
func (c *Chmod) Apply(m fs.FileMode) fs.FileMode {
	typ := m &^ modeBits
	if c.octal {
		return typ | fromUnix(c.mode)
	}
	bits := toUnix(m)
	for _, cl := range c.clauses {
		for _, o := range cl.ops {
			var set uint32
			if o.class {
				var v uint32
				switch o.perm {
				case "u":
					v = bits >> 6 & 7
				case "g":
					v = bits >> 3 & 7
				case "o":
					v = bits & 7
				}
				set = v<<6 | v<<3 | v
			}
			for _, p := range o.perm {
				switch p {
				case 'r':
					set |= 0o444
				case 'w':
					set |= 0o222
				case 'x':
					set |= 0o111
				case 'X':
					if m.IsDir() || bits&0o111 != 0 {
						set |= 0o111
					}
				case 's':
					set |= 0o6000
				case 't':
					set |= 0o1000
				}
			}
			set &= cl.who
			switch o.op {
			case '+':
				bits |= set
			case '-':
				bits &^= set
			case '=':
				bits = bits&^(cl.who&0o777) | set
			}
		}
	}
	return typ | fromUnix(bits)
}

// toUnix returns the permission and special bits of m as chmod(2) has them.
func toUnix(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// fromUnix is toUnix's inverse.
func fromUnix(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	if u&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}
