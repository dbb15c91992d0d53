package ghacache

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The child process of TestKillMidUpload: a server on the directory and
// token its parent passes, on 127.0.0.1, printing its URL.
const (
	childDirEnv   = "GHACACHE_TEST_CHILD_DIR"
	childTokenEnv = "GHACACHE_TEST_CHILD_TOKEN"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		childServer(dir, os.Getenv(childTokenEnv))
		return
	}
	os.Exit(m.Run())
}

func childServer(dir, token string) {
	h, err := New(Options{Dir: dir, Token: token})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("http://" + ln.Addr().String())
	http.Serve(ln, h)
}

// TestKillMidUpload kills (SIGKILL) a server process while a v1 chunk and
// a v2 Put Blob are streaming into it, after other parts of both uploads
// were stored. A server restarted on the directory shows neither entry;
// the reservations are still held, and the v1 upload can be finished.
func TestKillMidUpload(t *testing.T) {
	dir := t.TempDir()
	child, kill := startChild(t, dir)
	data := randomBytes(2<<20, 3)
	id, st, _ := child.v1Reserve(t, "killed-v1", testVersion, int64(len(data)))
	if st != 200 || child.v1Patch(t, id, 0, data[:1<<20]) != 204 {
		t.Fatalf("first chunk: reserve %d", st)
	}
	upload := child.v2Create(t, "killed-v2")
	if st, _, _ := child.do(t, "PUT", upload+"&comp=block&blockid="+blockID("b1"), nil, data[:1000]); st != 201 {
		t.Fatalf("Put Block: %d", st)
	}
	// Two bodies that stop halfway: the server is killed while reading them.
	wait := []func(){
		child.sendHalf(t, "PATCH", fmt.Sprintf("%s/_apis/artifactcache/caches/%d", child.URL, id),
			map[string]string{"Content-Range": fmt.Sprintf("bytes %d-%d/*", 1<<20, len(data)-1)}, data[1<<20:]),
		child.sendHalf(t, "PUT", upload, map[string]string{"x-ms-blob-type": "BlockBlob"}, data[1<<20:]),
	}
	time.Sleep(200 * time.Millisecond)
	kill()
	for _, w := range wait {
		w()
	}

	ts := newTestServer(t, Options{Dir: dir, Token: child.token})
	for _, k := range []string{"killed-v1", "killed-v2"} {
		if got, _ := ts.v1Lookup(t, testVersion, k); got != "" {
			t.Errorf("%s is visible after a kill mid-upload", k)
		}
		if _, st, _ := ts.v1Reserve(t, k, testVersion, 0); st != 409 {
			t.Errorf("reserve of %s after the restart: %d, want 409 (its reservation is kept)", k, st)
		}
	}
	// The v2 reservation kept its staged block: ids of another length are
	// still refused, and a block list of it makes the blob.
	upload = ts.URL + strings.TrimPrefix(upload, child.URL)
	if st, _, _ := ts.do(t, "PUT", upload+"&comp=block&blockid="+blockID("b22"), nil, []byte("x")); st != 400 {
		t.Errorf("Put Block with an id of another length after the restart: %d, want 400", st)
	}
	if st, _, _ := ts.do(t, "PUT", upload+"&comp=blocklist", nil, blockList("b1")); st != 201 {
		t.Errorf("Put Block List of the block staged before the kill: %d, want 201", st)
	}
	if st, m := ts.twirp(t, "FinalizeCacheEntryUpload", map[string]any{"key": "killed-v2", "version": testVersion, "size_bytes": 1000}); st != 200 || m["ok"] != true {
		t.Errorf("finalize after the restart: %d %v", st, m)
	}
	if st, _ := ts.v1Commit(t, id, int64(len(data))); st != 400 {
		t.Errorf("commit of the half-sent upload: %d, want 400", st)
	}
	if st := ts.v1Patch(t, id, 1<<20, data[1<<20:]); st != 204 {
		t.Fatalf("resending the killed chunk: %d", st)
	}
	if st, out := ts.v1Commit(t, id, int64(len(data))); st != 204 {
		t.Fatalf("commit after the resend: %d %s", st, out)
	}
	got, loc := ts.v1Lookup(t, testVersion, "killed-v1")
	if got != "killed-v1" || !bytes.Equal([]byte(ts.download(t, loc)), data) {
		t.Errorf("the finished upload: matched %q or wrong bytes", got)
	}
}

// startChild runs a server on dir in a child process and returns a client
// for it and a function that kills it with SIGKILL.
func startChild(t *testing.T, dir string) (*testServer, func()) {
	t.Helper()
	token := testJWT(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childTokenEnv+"="+token)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
	t.Cleanup(kill)
	line, _ := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "http://") {
		t.Fatalf("child server: %q", line)
	}
	return &testServer{URL: strings.TrimSpace(line), client: &http.Client{Timeout: 30 * time.Second}, token: token}, kill
}

// sendHalf starts a request announcing len(body) bytes and sends half of
// them. The returned wait ends the body and waits for the request to end.
func (ts *testServer) sendHalf(t *testing.T, method, url string, hdr map[string]string, body []byte) (wait func()) {
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(method, url, pr)
	req.ContentLength = int64(len(body))
	req.Header.Set("Authorization", "Bearer "+ts.token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := ts.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	pw.Write(body[:len(body)/2])
	return func() {
		pw.CloseWithError(io.ErrUnexpectedEOF)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("a request to the killed server did not end")
		}
	}
}
