package remote

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// maxPingBody bounds the body of a /v2/ answer kept in memory (registries
// send "{}" or a short error document).
const maxPingBody = 64 << 10

// pingMemo answers the registry version check (GET /v2/) once per scheme
// and host for the whole process. ggcr pings a registry for every
// repository it reads or writes and again for pushes, each time first over
// HTTPS and, for a registry that may be reached over plain HTTP, then over
// HTTP; the answer (200, or 401 and its challenge) is the same every time.
// So the first ping of a scheme and host goes to the network, concurrent
// ones wait for it, and later ones get a copy of its answer. Once a host
// has answered over plain HTTP, an HTTPS ping to it fails at once: the
// fallback is decided once, not once per repository.
//
// The first HTTPS ping of a host that may be reached over plain HTTP
// (allowHTTP) sends the HTTP ping at the same time, instead of after the
// HTTPS attempt failed, so that the fallback costs no round trip of its own.
//
// Only answers are kept: a ping that failed (no response) is not, except
// the HTTPS attempt of a host that has since answered over HTTP. Only a
// registry's answer (200 or 401) over HTTP marks a host as plain HTTP: a
// TLS registry answers a plain request with 400.
type pingMemo struct {
	next      http.RoundTripper
	allowHTTP func(hostport string) bool

	mu        sync.Mutex
	pings     map[string]*pingCall // by scheme://host
	plainHTTP map[string]bool      // hosts that answered a ping over http
}

// pingCall is one ping to the network; done is closed when it ended.
type pingCall struct {
	done   chan struct{}
	status int
	header http.Header
	body   []byte
	err    error
	// proto fields copied into each answer
	proto      string
	protoMajor int
	protoMinor int
}

func newPingMemo(next http.RoundTripper, allowHTTP func(string) bool) *pingMemo {
	return &pingMemo{next: next, allowHTTP: allowHTTP, pings: map[string]*pingCall{}, plainHTTP: map[string]bool{}}
}

// isPing reports whether req is a registry version check: a bare GET of
// /v2/ without credentials (ggcr's ping sends none).
func isPing(req *http.Request) bool {
	return req.Method == http.MethodGet && req.URL.Path == "/v2/" && req.URL.RawQuery == "" &&
		req.Header.Get("Authorization") == ""
}

func (p *pingMemo) RoundTrip(req *http.Request) (*http.Response, error) {
	if !isPing(req) {
		return p.next.RoundTrip(req)
	}
	host := req.URL.Host
	key := req.URL.Scheme + "://" + host
	p.mu.Lock()
	if req.URL.Scheme == "https" && p.plainHTTP[host] {
		p.mu.Unlock()
		return nil, fmt.Errorf("registry %s answers over plain HTTP (found at this build's first ping): %w", host, errPlainHTTP)
	}
	call, ok := p.pings[key]
	if !ok {
		call = &pingCall{done: make(chan struct{})}
		p.pings[key] = call
	}
	var plain *http.Request
	var plainCall *pingCall
	if !ok && req.URL.Scheme == "https" && p.allowHTTP != nil && p.allowHTTP(host) {
		if _, started := p.pings["http://"+host]; !started {
			plain = req.Clone(req.Context())
			plain.URL.Scheme = "http"
			plainCall = &pingCall{done: make(chan struct{})}
			p.pings["http://"+host] = plainCall
		}
	}
	p.mu.Unlock()
	if plain != nil {
		go p.do(plain, "http://"+host, plainCall)
	}
	if ok {
		select {
		case <-call.done:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
		if call.err != nil {
			// Callers that waited share the failure; the next one pings again.
			return nil, call.err
		}
		return call.response(req), nil
	}
	p.do(req, key, call)
	if call.err != nil {
		return nil, call.err
	}
	return call.response(req), nil
}

// errPlainHTTP marks the HTTPS ping of a host that speaks plain HTTP.
var errPlainHTTP = errors.New("not pinged again over HTTPS")

// do sends the ping and records its answer in call.
func (p *pingMemo) do(req *http.Request, key string, call *pingCall) {
	defer close(call.done)
	resp, err := p.next.RoundTrip(req)
	if err == nil {
		call.body, err = io.ReadAll(io.LimitReader(resp.Body, maxPingBody))
		resp.Body.Close()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		call.err = err
		// A failed ping is tried again by the next caller; but the HTTPS
		// attempt of a host whose HTTP ping is on its way is kept until
		// that answers, so no caller in between tries HTTPS again.
		if plain, ok := p.pings["http://"+req.URL.Host]; ok && req.URL.Scheme == "https" {
			go p.forgetAfter(key, call, req.URL.Host, plain)
			return
		}
		delete(p.pings, key)
		return
	}
	call.status, call.header = resp.StatusCode, resp.Header.Clone()
	call.proto, call.protoMajor, call.protoMinor = resp.Proto, resp.ProtoMajor, resp.ProtoMinor
	if req.URL.Scheme == "http" && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized) {
		p.plainHTTP[req.URL.Host] = true
	}
}

// forgetAfter drops the failed HTTPS ping call of host once its HTTP ping
// plain has ended, unless that showed the host speaks plain HTTP (then
// HTTPS pings fail at once anyway).
func (p *pingMemo) forgetAfter(key string, call *pingCall, host string, plain *pingCall) {
	<-plain.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.plainHTTP[host] && p.pings[key] == call {
		delete(p.pings, key)
	}
}

// response is a fresh copy of the recorded answer, for req.
func (c *pingCall) response(req *http.Request) *http.Response {
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", c.status, http.StatusText(c.status)),
		StatusCode:    c.status,
		Proto:         c.proto,
		ProtoMajor:    c.protoMajor,
		ProtoMinor:    c.protoMinor,
		Header:        c.header.Clone(),
		Body:          io.NopCloser(bytes.NewReader(c.body)),
		ContentLength: int64(len(c.body)),
		Request:       req,
	}
}

// Unwrap returns the transport below, so its capabilities stay visible.
func (p *pingMemo) Unwrap() http.RoundTripper { return p.next }

// CloseIdleConnections forwards to the transport below.
func (p *pingMemo) CloseIdleConnections() {
	if c, ok := p.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
