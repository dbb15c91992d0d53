package solve

import (
	"os"
	"path/filepath"
	"testing"
)

// TestChownIDs: --chown resolves as BuildKit v0.34.2 resolved it in
// e2e/testdata/conformance/24-chown.
func TestChownIDs(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"etc/passwd": "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nsvc:x:1001:1002::/home/svc:/bin/sh\n",
		"etc/group":  "root:x:0:\napp:x:1000:\ngrp:x:1002:\nother:x:1003:\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		chown    string
		uid, gid uint32
	}{
		{"svc", 1001, 1002},
		{"svc:other", 1001, 1003},
		{"1001", 1001, 1001},
		{"1005:1006", 1005, 1006},
		{"app:1003", 1000, 1003},
		{":other", 0, 1003},
		{"4242", 4242, 4242},
	}
	for _, tt := range tests {
		uid, gid, err := chownIDs(root, tt.chown)
		if err != nil || uid != tt.uid || gid != tt.gid {
			t.Errorf("chownIDs(%q) = %d:%d, %v; want %d:%d", tt.chown, uid, gid, err, tt.uid, tt.gid)
		}
	}
	if _, _, err := chownIDs(root, "ghost"); err == nil {
		t.Error(`chownIDs("ghost") succeeded, want an error`)
	}
}
