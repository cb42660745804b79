package agentdist

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
)

func sum(data string) string {
	h := sha256.Sum256([]byte(data))
	return hex.EncodeToString(h[:])
}

func get(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestHandler(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kkagent-linux-arm64"), []byte("arm64 binary"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README"), []byte("not a binary"), 0o644))
	self := filepath.Join(t.TempDir(), "kkagent")
	require.NoError(t, os.WriteFile(self, []byte("self binary"), 0o755))
	h := NewHandler(Config{Dir: dir, Self: self})
	here := "?os=" + runtime.GOOS + "&arch=" + runtime.GOARCH
	platforms := []string{"linux/arm64", runtime.GOOS + "/" + runtime.GOARCH}
	slices.Sort(platforms)
	served := strings.Join(slices.Compact(platforms), ", ")
	for _, tc := range []struct {
		name, method, target string
		status               int
		body, ctype, code    string
		msg                  []string
	}{
		{name: "binary from dir", method: "GET", target: "/install/kkagent?os=linux&arch=arm64",
			status: 200, body: "arm64 binary", ctype: "application/octet-stream"},
		{name: "checksum", method: "GET", target: "/install/kkagent/sha256?os=linux&arch=arm64",
			status: 200, body: sum("arm64 binary") + "\n", ctype: "text/plain; charset=utf-8"},
		{name: "own platform falls back to self", method: "GET", target: "/install/kkagent" + here,
			status: 200, body: "self binary", ctype: "application/octet-stream"},
		{name: "head", method: "HEAD", target: "/install/kkagent?os=linux&arch=arm64", status: 200, ctype: "application/octet-stream"},
		{name: "missing platform", method: "GET", target: "/install/kkagent?os=windows&arch=amd64", status: 404, code: api.CodeNotFound,
			msg: []string{"no kkagent for windows/amd64", "served: " + served, "kkagent-windows-amd64", "--agent-binaries"}},
		{name: "missing checksum", method: "GET", target: "/install/kkagent/sha256?os=linux&arch=riscv64", status: 404, code: api.CodeNotFound},
		{name: "no platform", method: "GET", target: "/install/kkagent", status: 400, code: api.CodeBadRequest,
			msg: []string{"?os=OS&arch=ARCH", "served: " + served}},
		{name: "path traversal", method: "GET", target: "/install/kkagent?os=../../etc&arch=passwd", status: 400, code: api.CodeBadRequest},
		{name: "post", method: "POST", target: "/install/kkagent?os=linux&arch=arm64", status: 405, code: api.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := get(t, h, tc.method, tc.target)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			if tc.code != "" {
				var eb api.ErrorBody
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &eb), rec.Body.String())
				assert.Equal(t, tc.code, eb.Error.Code)
				for _, m := range tc.msg {
					assert.Contains(t, eb.Error.Message, m)
				}
				return
			}
			assert.Equal(t, tc.ctype, rec.Header().Get("Content-Type"))
			if tc.method != "HEAD" {
				assert.Equal(t, tc.body, rec.Body.String())
			}
			assert.Len(t, rec.Header().Get(ChecksumHeader), 64)
		})
	}
}

func TestHandlerPrefersDirAndCachesChecksums(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, BinaryName(runtime.GOOS, runtime.GOARCH))
	require.NoError(t, os.WriteFile(bin, []byte("version one"), 0o755))
	self := filepath.Join(t.TempDir(), "kkagent")
	require.NoError(t, os.WriteFile(self, []byte("self binary"), 0o755))
	h := NewHandler(Config{Dir: dir, Self: self})
	target := "/install/kkagent/sha256?os=" + runtime.GOOS + "&arch=" + runtime.GOARCH

	assert.Equal(t, sum("version one")+"\n", get(t, h, "GET", target).Body.String(), "the directory wins over self")

	// Same size and modification time: the cached checksum is served (the
	// file is not hashed again on every request).
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	require.NoError(t, os.Chtimes(bin, mtime, mtime))
	assert.Equal(t, sum("version one")+"\n", get(t, h, "GET", target).Body.String())
	require.NoError(t, os.WriteFile(bin, []byte("version six"), 0o755))
	require.NoError(t, os.Chtimes(bin, mtime, mtime))
	assert.Equal(t, sum("version one")+"\n", get(t, h, "GET", target).Body.String(), "cached by (path, mtime, size)")

	// A new version of the file is hashed again.
	require.NoError(t, os.Chtimes(bin, mtime.Add(time.Minute), mtime.Add(time.Minute)))
	assert.Equal(t, sum("version six")+"\n", get(t, h, "GET", target).Body.String())
	rec := get(t, h, "GET", "/install/kkagent?os="+runtime.GOOS+"&arch="+runtime.GOARCH)
	body, _ := io.ReadAll(rec.Body)
	assert.Equal(t, "version six", string(body))
	assert.Equal(t, sum("version six"), rec.Header().Get(ChecksumHeader))
	assert.Equal(t, `"sha256-`+sum("version six")+`"`, rec.Header().Get("ETag"))
}

func TestHandlerNothingServed(t *testing.T) {
	t.Parallel()
	h := NewHandler(Config{Dir: filepath.Join(t.TempDir(), "missing"), Self: filepath.Join(t.TempDir(), "missing")})
	rec := get(t, h, "GET", "/install/kkagent?os=linux&arch=amd64")
	require.Equal(t, 404, rec.Code)
	assert.Contains(t, rec.Body.String(), "served: none")
}

func TestDefaultConfig(t *testing.T) {
	t.Parallel()
	assert.Equal(t, Config{Dir: "/opt/kraken/bin/agents", Self: "/opt/kraken/bin/kkagent"}, DefaultConfig("/opt/kraken/bin/kkd"))
}
