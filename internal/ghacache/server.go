package ghacache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// DefaultMaxSize is the size limit when Options.MaxSize is zero: GitHub's
// free 10 GB per repository.
const DefaultMaxSize = 10 << 30

// maxJSONBody caps the JSON body of a v1 or Twirp call.
const maxJSONBody = 1 << 20

// The account and container segments of signed blob URLs.
const (
	blobAccount   = "kiln"
	blobContainer = "cache"
)

// Options configure a Handler.
type Options struct {
	// Dir holds the entries, reservations and the URL signing key. It is
	// created (0700) when missing; one Handler at a time may use it.
	// Required.
	Dir string
	// MaxSize bounds the bytes of committed entries: past it the least
	// recently used are evicted. It also bounds one entry and one request
	// body (larger ones get 413). Zero means DefaultMaxSize.
	MaxSize int64
	// Token, when set, is the bearer token that may read and write.
	Token string
	// ReadToken, when set, is a bearer token that may only read; its
	// writes get 403 ("cache write denied: ..."). With neither token set
	// every caller may read and write, and only loopback callers are
	// served.
	ReadToken string
	// BaseURL is the origin put into signed blob URLs, such as
	// "https://cache.example:8080". Empty means the scheme and Host of each
	// request, which is right unless a proxy rewrites Host.
	BaseURL string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger receives diagnostics (one line per request at debug level).
	// Nil discards them.
	Logger *slog.Logger
}

// Handler serves the GitHub Actions cache over v1, v2 and the blob URLs.
// It is safe for concurrent use. Close releases its directory.
type Handler struct {
	opts   Options
	store  *store
	secret []byte
	mux    *http.ServeMux
	log    *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// New opens opts.Dir (rebuilding its index, removing what an interrupted
// write left) and returns a Handler serving it. It fails when another
// Handler holds the directory.
func New(opts Options) (*Handler, error) {
	if opts.Dir == "" {
		return nil, errors.New("ghacache: Options.Dir is required")
	}
	if opts.MaxSize == 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.MaxSize < 0 {
		return nil, fmt.Errorf("ghacache: negative MaxSize %d", opts.MaxSize)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := openStore(opts.Dir, opts.MaxSize, opts.Now)
	if err != nil {
		return nil, err
	}
	secret, err := loadSecret(opts.Dir)
	if err != nil {
		st.close()
		return nil, err
	}
	h := &Handler{opts: opts, store: st, secret: secret, log: opts.Logger, mux: http.NewServeMux()}
	h.routes()
	return h, nil
}

// Close releases the directory. Requests still running may fail.
func (h *Handler) Close() error { return h.store.close() }

func (h *Handler) now() time.Time { return h.opts.Now() }

func (h *Handler) routes() {
	const v1 = "/_apis/artifactcache/"
	h.mux.HandleFunc("GET "+v1+"cache", h.v1Lookup)
	h.mux.HandleFunc("GET "+v1+"caches", h.v1List)
	h.mux.HandleFunc("POST "+v1+"caches", h.v1Reserve)
	h.mux.HandleFunc("PATCH "+v1+"caches/{id}", h.v1Upload)
	h.mux.HandleFunc("POST "+v1+"caches/{id}", h.v1Commit)
	h.mux.HandleFunc("/"+twirpService+"/{method}", h.twirp)
	blob := "/" + blobAccount + "/" + blobContainer + "/{name}"
	h.mux.HandleFunc("PUT "+blob, h.blobPut)
	h.mux.HandleFunc("GET "+blob, h.blobGet)
	h.mux.HandleFunc("HEAD "+blob, h.blobGet)
}

// ServeHTTP routes r. Every answer carries x-ms-request-id (the Go Azure
// SDK dereferences it on every response).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	id, _ := randomHex(16)
	id = id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
	w.Header().Set("x-ms-request-id", id)
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	if h.open() && !loopback(r) {
		http.Error(sw, "this cache server has no token and serves loopback clients only", http.StatusForbidden)
	} else {
		h.mux.ServeHTTP(sw, r)
	}
	h.log.Debug("request", "method", r.Method, "path", r.URL.Path, "comp", r.URL.Query().Get("comp"), "xrange", r.Header.Get("x-ms-range"), "range", r.Header.Get("Range"), "status", sw.status, "bytes", sw.n, "took", h.now().Sub(start))
}

type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// decodeJSON reads a JSON body of at most maxJSONBody bytes into v. A
// larger body is errTooLarge.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("a body over %d bytes: %w", maxJSONBody, errTooLarge)
	}
	if err != nil {
		return fmt.Errorf("reading body: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", errInvalid, err)
	}
	return nil
}

// errInvalid marks a request that is malformed or breaks a rule of GitHub's.
var errInvalid = errors.New("ghacache: invalid request")

// maxKeys and maxKeyLen are GitHub's limits on a restore's keys.
const (
	maxKeys   = 10
	maxKeyLen = 512
)

// checkKey applies GitHub's key rules: non-empty, at most 512 characters,
// no commas.
func checkKey(k string) error {
	switch {
	case k == "":
		return fmt.Errorf("%w: empty key", errInvalid)
	case len(k) > maxKeyLen:
		return fmt.Errorf("%w: key of %d characters, the limit is %d", errInvalid, len(k), maxKeyLen)
	case strings.Contains(k, ","):
		return fmt.Errorf("%w: key %q contains a comma", errInvalid, k)
	}
	return nil
}

func checkVersion(v string) error {
	if v == "" || len(v) > maxKeyLen {
		return fmt.Errorf("%w: version must be 1 to %d characters", errInvalid, maxKeyLen)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeDenied is the message prefix @actions/cache recognises as a policy
// denial (a warning, not a failure).
const writeDenied = "cache write denied: "
