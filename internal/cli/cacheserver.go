package cli

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/ghacache"
)

type cacheServerFlags struct {
	listen, dir, maxSize, token, readToken string
}

func newCacheServerCmd(env Env, g *globals) *cobra.Command {
	var f cacheServerFlags
	c := &cobra.Command{
		Use:   "cache-server --listen ADDR --dir DIR [--max-size SIZE] [--token T] [--read-token R]",
		Short: "Serve a GitHub Actions cache (v1 and v2 APIs) from a directory",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			opts, err := f.options()
			if err != nil {
				return err
			}
			opts.Logger = g.logger(env.Stderr)
			return serveCache(c.Context(), env.Stderr, f.listen, opts, f.maxSize)
		},
	}
	c.Flags().StringVar(&f.listen, "listen", "", "address to listen on, HOST:PORT (a loopback HOST unless a token is given)")
	c.Flags().StringVar(&f.dir, "dir", "", "directory of the cache entries (created when missing)")
	c.Flags().StringVar(&f.maxSize, "max-size", "10GB", "evict least recently used entries past SIZE (e.g. 10GB, 512MB)")
	c.Flags().StringVar(&f.token, "token", "", "bearer token that may read and write")
	c.Flags().StringVar(&f.readToken, "read-token", "", "bearer token that may only read")
	return c
}

// options checks the flags and turns them into ghacache.Options.
func (f cacheServerFlags) options() (ghacache.Options, error) {
	if f.listen == "" {
		return ghacache.Options{}, usagef("cache-server: --listen ADDR is required")
	}
	if f.dir == "" {
		return ghacache.Options{}, usagef("cache-server: --dir DIR is required")
	}
	host, _, err := net.SplitHostPort(f.listen)
	if err != nil {
		return ghacache.Options{}, usagef("--listen %q: want HOST:PORT", f.listen)
	}
	if f.token == "" && f.readToken == "" && !loopbackHost(host) {
		return ghacache.Options{}, usagef("--listen %q is not a loopback address: without --token anyone could write, so give --token (and --read-token) to serve other hosts", f.listen)
	}
	if f.token != "" && f.token == f.readToken {
		return ghacache.Options{}, usagef("cache-server: --token and --read-token must differ")
	}
	n, err := parseSize(f.maxSize)
	if err != nil || n <= 0 {
		return ghacache.Options{}, usagef("--max-size %q: want a size such as 10GB or 512MB", f.maxSize)
	}
	return ghacache.Options{Dir: f.dir, MaxSize: n, Token: f.token, ReadToken: f.readToken}, nil
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serveCache serves opts on listen until ctx ends (SIGINT or SIGTERM), then
// shuts down cleanly: requests in flight get a few seconds to finish.
func serveCache(ctx context.Context, stderr io.Writer, listen string, opts ghacache.Options, maxLabel string) error {
	h, err := ghacache.New(opts)
	if err != nil {
		return err
	}
	defer h.Close()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return usagef("--listen %q: %v", listen, err)
	}
	// No read or write timeout: an upload or download of gigabytes may
	// take long. Headers and idle connections are bounded.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	printCacheEnv(stderr, ln.Addr().(*net.TCPAddr), opts, maxLabel)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving the cache: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutting down the cache server: %w", err)
	}
	<-done
	fmt.Fprintln(stderr, "kiln cache-server: stopped")
	return nil
}

// printCacheEnv tells what a runner must export to use the server. It
// never prints a token the user chose.
func printCacheEnv(w io.Writer, addr *net.TCPAddr, opts ghacache.Options, maxLabel string) {
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host, _ = os.Hostname()
	}
	base := "http://" + net.JoinHostPort(host, strconv.Itoa(addr.Port)) + "/"
	fmt.Fprintf(w, "kiln cache-server: serving %s on %s (max size %s, %d bytes)\n", opts.Dir, base, maxLabel, opts.MaxSize)
	fmt.Fprintln(w, "export in the runner's environment:")
	fmt.Fprintf(w, "  ACTIONS_CACHE_URL=%s\n  ACTIONS_RESULTS_URL=%s\n  ACTIONS_CACHE_SERVICE_V2=true\n", base, base)
	switch {
	case opts.Token != "":
		fmt.Fprintln(w, "  ACTIONS_RUNTIME_TOKEN=<your --token>")
		if opts.ReadToken != "" {
			fmt.Fprintln(w, "  (or ACTIONS_RUNTIME_TOKEN=<your --read-token> for jobs that may only read)")
		}
	case opts.ReadToken != "":
		fmt.Fprintln(w, "  ACTIONS_RUNTIME_TOKEN=<your --read-token> (no --token: nobody may write)")
	default:
		// Nothing is checked, so any value does; BuildKit's client wants
		// a JWT with ac, exp and nbf claims, so give one.
		fmt.Fprintf(w, "  ACTIONS_RUNTIME_TOKEN=%s\n", placeholderToken(time.Now()))
	}
}

// placeholderToken is a JWT that go-actions-cache (BuildKit, buildx)
// accepts, for a server that checks no token: one scope with read and
// write, valid for a year. It grants nothing by itself.
func placeholderToken(now time.Time) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{
		"ac":  `[{"Scope":"","Permission":3}]`,
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(365 * 24 * time.Hour).Unix(),
		"iss": "kiln cache-server",
	})
	body := head + "." + enc.EncodeToString(claims)
	m := hmac.New(sha256.New, []byte("kiln cache-server: no token"))
	m.Write([]byte(body))
	return body + "." + enc.EncodeToString(m.Sum(nil))
}
