package gha

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kiln-build/kiln/internal/cache"
)

// Sentinel errors of a skipped import or export. Neither is a failure: the
// caller shows one warning line and goes on.
var (
	// ErrSkipped is an import or export that ACTIONS_CACHE_MODE turns off.
	// It is a cache.ErrSkipped.
	ErrSkipped error = skip("gha: skipped")
	// ErrReadOnly is an export refused because the token may only read:
	// its ac claim grants write in no scope, or the service answered a
	// write with 403. It is a cache.ErrSkipped.
	ErrReadOnly error = skip("gha: this token may only read: export skipped")
)

// skip is a sentinel that errors.Is also takes for cache.ErrSkipped, so
// the build treats every backend's skips alike.
type skip string

func (s skip) Error() string { return string(s) }

// Is makes errors.Is(err, cache.ErrSkipped) hold.
func (s skip) Is(target error) bool { return target == cache.ErrSkipped }

// IsSkip reports whether err is a skip (ErrSkipped or ErrReadOnly) rather
// than a failure.
func IsSkip(err error) bool { return errors.Is(err, ErrSkipped) || errors.Is(err, ErrReadOnly) }

// Cache modes of ACTIONS_CACHE_MODE, as @actions/cache 6.x spells them.
const (
	ModeNone      = "none"
	ModeRead      = "read"
	ModeWrite     = "write"
	ModeWriteOnly = "write-only"
)

// permWrite is the write bit of a scope's Permission in the token's ac
// claim (1 is read).
const permWrite = 2

// TokenScope is one entry of the runtime token's ac claim: a git-ref scope
// and what the token may do in it (1 read, 2 write, 3 both).
type TokenScope struct {
	// Scope is the git ref, such as refs/heads/main.
	Scope string
	// Permission is a bit mask: 1 read, 2 write.
	Permission int
}

// Access is what a job may do with the cache: ACTIONS_CACHE_MODE and the
// runtime token's claims. Its zero value allows everything.
type Access struct {
	// Mode is ACTIONS_CACHE_MODE as set ("" when unset).
	Mode string
	// Scopes is the token's ac claim; nil when the token is not a JWT (a
	// self-hosted kiln cache-server token) or carries no ac claim.
	Scopes []TokenScope
	// ReadOnly is a token whose ac claim grants write in no scope.
	ReadOnly bool
}

// newAccess reads ACTIONS_CACHE_MODE and the token's claims. The token's
// signature is not checked: the service does that; kiln only wants to know
// in advance what the service will refuse.
func newAccess(mode, token string) Access {
	a := Access{Mode: mode}
	scopes, ok := tokenScopes(token)
	if !ok {
		return a
	}
	a.Scopes = scopes
	a.ReadOnly = true
	for _, s := range scopes {
		if s.Permission >= permWrite {
			a.ReadOnly = false
		}
	}
	return a
}

// CanImport reports whether ACTIONS_CACHE_MODE allows reading.
func (a Access) CanImport() bool { return a.Mode != ModeNone && a.Mode != ModeWriteOnly }

// CanExport reports whether ACTIONS_CACHE_MODE and the token allow writing.
func (a Access) CanExport() bool { return a.exportSkipped() == nil }

func (a Access) importSkipped() error {
	if !a.CanImport() {
		return fmt.Errorf("%w: %s=%s allows no import", ErrSkipped, EnvCacheMode, a.Mode)
	}
	return nil
}

func (a Access) exportSkipped() error {
	if a.Mode == ModeNone || a.Mode == ModeRead {
		return fmt.Errorf("%w: %s=%s allows no export", ErrSkipped, EnvCacheMode, a.Mode)
	}
	if a.ReadOnly {
		return fmt.Errorf("%w (its ac claim grants write in no scope)", ErrReadOnly)
	}
	return nil
}

// tokenScopes decodes the ac claim of a JWT without checking its
// signature. ok is false for a token that is not a JWT or has no ac claim:
// such a token may do whatever the server lets it.
func tokenScopes(token string) (scopes []TokenScope, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, false
	}
	var claims struct {
		AC json.RawMessage `json:"ac"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || len(claims.AC) == 0 || string(claims.AC) == "null" {
		return nil, false
	}
	// GitHub sends ac as a JSON string holding the array; accept the
	// array itself too.
	raw := []byte(claims.AC)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = []byte(s)
	}
	var list []TokenScope
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, false
	}
	return list, true
}
