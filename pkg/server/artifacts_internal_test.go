package server

import (
	"path"
	"strings"
	"testing"

	"github.com/kraken-go/kk/pkg/blob"
)

// FuzzArtifactPath: every path the server accepts is clean, relative and a
// valid blob key below the job's upload prefix.
func FuzzArtifactPath(f *testing.F) {
	for _, s := range []string{"a", "dist/app.tar.gz", "../x", "a//b", "/abs", "a/./b", "ü/ß", "a\x00b", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if checkArtifactPath(p) != nil {
			return
		}
		if path.Clean(p) != p || path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") {
			t.Fatalf("accepted unclean path %q", p)
		}
		if err := blob.ValidateKey("artifacts/1/2/3/0123456789abcdef/" + p); err != nil && len(p) < blob.MaxKeyLen-64 {
			t.Fatalf("accepted path %q is not a valid blob key: %v", p, err)
		}
	})
}
