package transport

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Error is a failed HTTP exchange. It carries what a user needs to act on
// the failure and nothing that could leak a secret: the URL is redacted
// (RedactURL), the message is redacted (RedactString), and no header is
// kept.
type Error struct {
	// Service names what the caller addressed, as the message's first
	// words, for example "registry ghcr.io" (the URL may name a token
	// server or blob storage instead). Empty leaves it out.
	Service string
	// Method is the request's method; empty when the failure happened
	// before any request was made.
	Method string
	// URL is the request's URL, redacted (RedactURL); empty as Method is.
	URL string
	// Status is the HTTP status code, or 0 when no response arrived (then
	// Err holds the network, TLS or bound error).
	Status int
	// Code is the server's own error code, for example
	// "MANIFEST_UNKNOWN" or Twirp's "not_found"; empty when the body had
	// none.
	Code string
	// Message is the server's own explanation (see ParseMessage), on one
	// line; empty when the body had none.
	Message string
	// Hint, when set, tells the user what to do next, for example to log
	// in.
	Hint string
	// Attempts is how often the request was sent when it was retried
	// before this answer was accepted (0 or 1: it was not).
	Attempts int
	// Elapsed is how long those attempts and the waits between them took.
	Elapsed time.Duration
	// Err is the underlying network error when Status is 0.
	Err error
}

// Error renders e as one line: "SERVICE: METHOD URL: STATUS TEXT: CODE:
// MESSAGE (HINT; gave up after N attempts in T)", leaving out what is
// empty.
func (e *Error) Error() string {
	var parts []string
	if e.Service != "" {
		parts = append(parts, e.Service)
	}
	if e.Method != "" {
		parts = append(parts, strings.TrimSpace(e.Method+" "+e.URL))
	}
	switch {
	case e.Status != 0:
		parts = append(parts, fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status)))
		if e.Code != "" {
			parts = append(parts, e.Code)
		}
		if e.Message != "" {
			parts = append(parts, e.Message)
		}
	case e.Err != nil:
		parts = append(parts, e.Err.Error())
	}
	s := strings.Join(parts, ": ")
	var notes []string
	if e.Hint != "" {
		notes = append(notes, e.Hint)
	}
	if e.Attempts > 1 {
		notes = append(notes, gaveUp(e.Attempts, e.Elapsed))
	}
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, "; ") + ")"
	}
	return s
}

// Unwrap returns the network error, if any.
func (e *Error) Unwrap() error { return e.Err }

// maxErrorBody bounds how much of an error body is read.
const maxErrorBody = 64 << 10

// maxMessage bounds the length of Error.Message.
const maxMessage = 300

// NewError returns the *Error for resp, an answer the caller did not
// expect: method and redacted URL of resp.Request, the status, the
// server's message from the first 64 KiB of the body (see ParseMessage),
// and the attempts when this package's Transport retried it. The caller
// still closes resp.Body.
func NewError(resp *http.Response) *Error {
	e := &Error{Status: resp.StatusCode}
	if resp.Request != nil {
		e.Method = resp.Request.Method
		e.URL = RedactURL(resp.Request.URL)
		e.Attempts, e.Elapsed = Attempts(resp.Request)
	}
	if resp.Body != nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		e.Code, e.Message = ParseMessage(body)
	}
	return e
}

// NewRequestError returns the *Error for req, which got no response
// because of err, as http.Client.Do or RoundTrip returned it. When err is
// a *url.Error, its Op and URL name the request if req is nil, and only
// its Err is kept.
func NewRequestError(req *http.Request, err error) *Error {
	e := &Error{}
	if req != nil {
		e.Method, e.URL = req.Method, RedactURL(req.URL)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) && uerr == err {
		err = uerr.Err
		if req == nil {
			e.Method, e.URL = strings.ToUpper(uerr.Op), RedactString(uerr.URL)
		}
	}
	e.Err = RedactError(err)
	var rerr *RetryError
	if errors.As(err, &rerr) {
		e.Attempts, e.Elapsed = rerr.Attempts, rerr.Elapsed
		e.Err = RedactError(rerr.Err)
	}
	return e
}

// registryErrors is the OCI distribution error document.
type registryErrors struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// jsonError covers single-error JSON bodies: Twirp's {"code","msg"}, and
// the {"code","message"} or {"error","error_description"} of REST APIs.
type jsonError struct {
	Code        string `json:"code"`
	Msg         string `json:"msg"`
	Message     string `json:"message"`
	Err         any    `json:"error"`
	Description string `json:"error_description"`
}

// xmlError is Azure Blob Storage's and S3's <Error><Code/><Message/>.
type xmlError struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// ParseMessage returns the server's own error code and message from an
// error body, on one line and redacted: the OCI registry document
// {"errors":[{"code","message"}]} (messages joined with "; "), Twirp's
// {"code","msg"}, a REST {"message"} or {"error"}, Azure's or S3's XML
// <Code> and <Message>, an HTML page's <title>, or else the first line of
// text. An empty body gives "", "".
func ParseMessage(body []byte) (code, message string) {
	body = bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\ufeff"))) // Azure starts with a BOM
	if len(body) == 0 {
		return "", ""
	}
	code, message = parseStructured(body)
	if code == "" && message == "" {
		message = firstLine(string(body))
	}
	return RedactString(code), clip(RedactString(oneLine(message)))
}

func parseStructured(body []byte) (code, message string) {
	switch body[0] {
	case '{':
		var re registryErrors
		if json.Unmarshal(body, &re) == nil && len(re.Errors) > 0 {
			var msgs []string
			for _, d := range re.Errors {
				if code == "" {
					code = d.Code
				}
				if d.Message != "" {
					msgs = append(msgs, d.Message)
				}
			}
			return code, strings.Join(msgs, "; ")
		}
		var je jsonError
		if json.Unmarshal(body, &je) == nil {
			msg := je.Msg
			if msg == "" {
				msg = je.Message
			}
			if s, ok := je.Err.(string); ok && msg == "" {
				msg = s
				if je.Description != "" {
					msg += ": " + je.Description
				}
			}
			return je.Code, msg
		}
	case '<':
		var xe xmlError
		if xml.Unmarshal(body, &xe) == nil && (xe.Code != "" || xe.Message != "") {
			return xe.Code, firstLine(xe.Message)
		}
		if t := htmlTitle(string(body)); t != "" {
			return "", t
		}
	}
	return "", ""
}

func htmlTitle(s string) string {
	lower := strings.ToLower(s)
	i := strings.Index(lower, "<title>")
	j := strings.Index(lower, "</title>")
	if i < 0 || j < i {
		return ""
	}
	return strings.TrimSpace(s[i+len("<title>") : j])
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	// Cut on a rune boundary.
	cut := maxMessage
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
