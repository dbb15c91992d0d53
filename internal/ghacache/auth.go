package ghacache

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/atomicfile"
)

var cryptoRead = rand.Read

// Lifetimes of signed blob URLs. An upload URL is used for every block of
// an upload, so it lives as long as a runner's token does; gac asks for a
// new download URL once when one has expired.
const (
	uploadURLTTL   = 6 * time.Hour
	downloadURLTTL = time.Hour
)

// Permissions a signed URL grants.
const (
	permRead  = "r"
	permWrite = "w"
)

// access is what a request's bearer token allows.
type access int

const (
	accessNone access = iota
	accessRead
	accessWrite
)

// accessOf checks the bearer token of r against the configured tokens.
// With no token configured every caller may read and write (New then only
// serves loopback clients).
func (h *Handler) accessOf(r *http.Request) access {
	if h.opts.Token == "" && h.opts.ReadToken == "" {
		return accessWrite
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return accessNone
	}
	if h.opts.Token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(h.opts.Token)) == 1 {
		return accessWrite
	}
	if h.opts.ReadToken != "" && subtle.ConstantTimeCompare([]byte(got), []byte(h.opts.ReadToken)) == 1 {
		return accessRead
	}
	return accessNone
}

// open reports whether the server runs without tokens.
func (h *Handler) open() bool { return h.opts.Token == "" && h.opts.ReadToken == "" }

// loopback reports whether r comes from a loopback address.
func loopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loadSecret reads the HMAC key of dir, making it (0600) on first start.
func loadSecret(dir string) ([]byte, error) {
	p := filepath.Join(dir, secretFile)
	b, err := os.ReadFile(p)
	if err == nil {
		key, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr == nil && len(key) >= 32 {
			return key, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading URL signing key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := cryptoRead(key); err != nil {
		return nil, fmt.Errorf("making URL signing key: %w", err)
	}
	if err := atomicfile.Write(p, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("making URL signing key: %w", err)
	}
	return key, nil
}

// mac is the signature of a blob URL granting perm on name until exp.
func (h *Handler) mac(perm, name string, exp int64) string {
	m := hmac.New(sha256.New, h.secret)
	fmt.Fprintf(m, "%s\n%s\n%d", perm, name, exp)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// blobURL is the signed URL of blob name, shaped
// /<account>/<container>/<blob>?exp=&sp=&sig= so that both Azure SDKs take
// it apart: the JS SDK wants three path segments on an IP or localhost
// host. The query names are not Azure SAS names, so neither SDK rewrites
// them.
func (h *Handler) blobURL(r *http.Request, perm, name string, ttl time.Duration) string {
	exp := h.now().Add(ttl).Unix()
	q := url.Values{}
	q.Set("exp", strconv.FormatInt(exp, 10))
	q.Set("sp", perm)
	q.Set("sig", h.mac(perm, name, exp))
	return h.baseURL(r) + "/" + blobAccount + "/" + blobContainer + "/" + name + "?" + q.Encode()
}

// verify checks the signature of a blob request for perm on name.
func (h *Handler) verify(q url.Values, perm, name string) error {
	exp, err := strconv.ParseInt(q.Get("exp"), 10, 64)
	if err != nil || q.Get("sp") != perm {
		return errors.New("the signed URL does not grant this operation")
	}
	if !hmac.Equal([]byte(q.Get("sig")), []byte(h.mac(perm, name, exp))) {
		return errors.New("the signature of the URL does not match")
	}
	if h.now().Unix() > exp {
		return errors.New("the signed URL has expired")
	}
	return nil
}

// baseURL is Options.BaseURL, else the origin the request was sent to.
func (h *Handler) baseURL(r *http.Request) string {
	if h.opts.BaseURL != "" {
		return strings.TrimRight(h.opts.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
