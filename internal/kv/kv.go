// Package kv parses the key=value lists of buildx's flags (--cache-from,
// --cache-to, --output, --secret): one CSV record (double quotes allowed,
// so a value can hold commas), each field split at its first "=", keys
// lower-cased and trimmed, values verbatim. It is the one such parser; the
// packages that own each flag interpret the keys.
package kv

import (
	"encoding/csv"
	"fmt"
	"strings"
)

// Parse reads s. A field without "=" and a key given twice are errors that
// name the field or key.
func Parse(s string) (map[string]string, error) {
	r := csv.NewReader(strings.NewReader(s))
	r.TrimLeadingSpace = true
	fields, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("parsing %q as CSV: %w", s, err)
	}
	out := make(map[string]string, len(fields))
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok {
			return nil, fmt.Errorf("field %q is not key=value", f)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%q given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

// Fields splits s as Parse does, without splitting fields at "=": for
// lists that may hold bare values (buildx's registry shorthand).
func Fields(s string) ([]string, error) {
	r := csv.NewReader(strings.NewReader(s))
	r.TrimLeadingSpace = true
	fields, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("parsing %q as CSV: %w", s, err)
	}
	return fields, nil
}
