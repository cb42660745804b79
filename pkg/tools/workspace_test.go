package tools

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newWS(t *testing.T, local bool) Workspace {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	return Workspace{Dir: dir, Local: local}
}

func writeFiles(t *testing.T, dir string, files ...string) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(dir, f)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(f), 0o644))
	}
}

func TestWorkspacePath(t *testing.T) {
	t.Parallel()
	for _, local := range []bool{false, true} {
		ws := newWS(t, local)
		p, err := ws.Path(ws.Dir, "source", "a/../b")
		require.NoError(t, err)
		assert.Equal(t, filepath.Join(ws.Dir, "b"), p)
		_, err = ws.Path(filepath.Join(ws.Dir, "sub"), "source", ws.Dir+"/x")
		assert.NoError(t, err, "absolute paths in the workspace are fine")
		_, err = ws.Path(ws.Dir, "source", "../escape")
		_, err2 := ws.Path(ws.Dir, "source", "/etc/passwd")
		_, err3 := ws.Cwd("/usr")
		if local {
			assert.NoError(t, err, "the local executor's system is the host")
			assert.NoError(t, err2)
			assert.NoError(t, err3)
		} else {
			assert.ErrorContains(t, err, "source ../escape is outside the job workspace "+ws.Dir+"; tools can only read and write the workspace")
			assert.ErrorContains(t, err2, "outside the job workspace")
			assert.ErrorContains(t, err3, "cwd /usr is outside")
		}
	}
}

func TestGlob(t *testing.T) {
	t.Parallel()
	ws := newWS(t, false)
	writeFiles(t, ws.Dir, "a.txt", "b.log", "d/c.txt", "d/e/f.txt", "d/e/g.bin", "x/y/z.txt")
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(ws.Dir, "d", "passwd.txt")))
	require.NoError(t, os.Symlink("c.txt", filepath.Join(ws.Dir, "d", "link.txt")))
	rels := func(dir, pat string) []string {
		ms, err := ws.Glob(filepath.Join(ws.Dir, dir), "source", pat)
		require.NoError(t, err)
		var out []string
		for _, m := range ms {
			out = append(out, m.Rel)
		}
		return out
	}
	for _, tc := range []struct {
		dir, pat string
		want     []string
	}{
		{"", "*.txt", []string{"a.txt"}},
		{"", "**/*.txt", []string{"a.txt", "d/c.txt", "d/e/f.txt", "d/link.txt", "x/y/z.txt"}},
		{"", "d", []string{"d/c.txt", "d/e/f.txt", "d/e/g.bin", "d/link.txt"}},
		{"", "d/**", []string{"d/c.txt", "d/e/f.txt", "d/e/g.bin", "d/link.txt"}},
		{"", "d/*/?.bin", []string{"d/e/g.bin"}},
		{"d", "e/*", []string{"e/f.txt", "e/g.bin"}},
		{"d", "../x/**/z.txt", []string{"x/y/z.txt"}},
		{"", "nothing/*", nil},
		{"", "a.txt", []string{"a.txt"}},
	} {
		assert.Equal(t, tc.want, rels(tc.dir, tc.pat), "%s in %q", tc.pat, tc.dir)
	}
	_, err := ws.Glob(ws.Dir, "source", "/etc/*")
	assert.ErrorContains(t, err, "outside the job workspace")
}

func TestMatchPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pat, name string
		want      bool
	}{
		{"**", "a/b/c", true},
		{"a/**/c", "a/c", true},
		{"a/**/c", "a/x/y/c", true},
		{"a/*/c", "a/x/y/c", false},
		{"*.txt", "a/b.txt", false},
		{"**/*.txt", "b.txt", true},
		{"[", "[", false},
	} {
		assert.Equal(t, tc.want, MatchPath(tc.pat, tc.name), "%s ~ %s", tc.pat, tc.name)
	}
}

func tarGz(t *testing.T, entries ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range entries {
		body := ""
		if h.Typeflag == tar.TypeReg {
			body = "data of " + h.Name
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		require.NoError(t, tw.WriteHeader(&h))
		_, err := tw.Write([]byte(body))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return buf.Bytes()
}

func TestCacheRoundTrip(t *testing.T) {
	t.Parallel()
	ws := newWS(t, false)
	writeFiles(t, ws.Dir, "dep/a.txt", "dep/sub/b.txt")
	require.NoError(t, os.Symlink("a.txt", filepath.Join(ws.Dir, "dep", "link")))
	require.NoError(t, os.Symlink("/etc", filepath.Join(ws.Dir, "dep", "etc")))
	var buf bytes.Buffer
	n, _, err := writeCacheArchive(ws, []string{"dep"}, &buf)
	require.NoError(t, err)
	assert.Equal(t, int64(2), n)

	ws2 := newWS(t, false)
	files, err := extractCacheArchive(ws2, &buf)
	require.NoError(t, err)
	assert.Equal(t, int64(2), files)
	data, err := os.ReadFile(filepath.Join(ws2.Dir, "dep", "sub", "b.txt"))
	require.NoError(t, err)
	assert.Equal(t, "dep/sub/b.txt", string(data))
	link, err := os.Readlink(filepath.Join(ws2.Dir, "dep", "link"))
	require.NoError(t, err)
	assert.Equal(t, "a.txt", link, "symlinks stay symlinks")
	link, err = os.Readlink(filepath.Join(ws2.Dir, "dep", "etc"))
	require.NoError(t, err)
	assert.Equal(t, "/etc", link, "a link out of the workspace is kept, never followed")
}

func TestCacheExtractRefusesEscapes(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	for _, tc := range []struct {
		name    string
		entries []tar.Header
		err     string
	}{
		{"dotdot", []tar.Header{{Name: "../evil", Typeflag: tar.TypeReg}}, "leaves the workspace"},
		{"absolute", []tar.Header{{Name: outside + "/evil", Typeflag: tar.TypeReg}}, "absolute"},
		{"through symlink", []tar.Header{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: outside},
			{Name: "l/evil", Typeflag: tar.TypeReg}}, "escapes"},
		{"relative symlink", []tar.Header{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "../../../.."},
			{Name: "l/evil", Typeflag: tar.TypeReg}}, ""},
		{"hard link out", []tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: "../x"}}, "hard link"},
		{"hard link absolute", []tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}, "hard link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := newWS(t, false)
			_, err := extractCacheArchive(ws, bytes.NewReader(tarGz(t, tc.entries...)))
			require.Error(t, err)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
			}
			_, statErr := os.Stat(filepath.Join(outside, "evil"))
			assert.True(t, os.IsNotExist(statErr), "nothing written outside")
		})
	}
}

func TestTriggerCommit(t *testing.T) {
	t.Parallel()
	a := strings.Repeat("a", 40)
	b := strings.Repeat("b", 40)
	for _, tc := range []struct {
		name, trigger, url, want string
	}{
		{"kraken list", `[{"repo":"https://github.com/o/r.git","after":"` + a + `"}]`, "git@github.com:o/r.git", a},
		{"other repo first", `[{"repo":"https://x/y","after":"` + b + `"},{"repo":"https://github.com/o/r","after":"` + a + `"}]`, "https://github.com/o/r", a},
		{"pull request", `{"pull_request":{"head":{"sha":"` + b + `","repo":{"clone_url":"https://github.com/o/r.git"}}}}`, "https://github.com/o/r", b},
		{"commits", `{"repository":{"clone_url":"https://h/o/r"},"commits":[{"id":"` + b + `"},{"id":"` + a + `"}]}`, "https://h/o/r", a},
		{"single without repo", `{"after":"` + a + `"}`, "https://h/o/r", a},
		{"single other repo", `{"repo":"https://h/o/other","after":"` + a + `"}`, "https://h/o/r", ""},
		{"deleted branch", `{"repo":"https://h/o/r","after":"` + strings.Repeat("0", 40) + `"}`, "https://h/o/r", ""},
		{"junk", `"nothing"`, "https://h/o/r", ""},
		{"file url", `{"repo":"file:///tmp/x/proj.git","after":"` + a + `"}`, "file:///tmp/x/proj", a},
	} {
		got, ok := triggerCommit([]byte(tc.trigger), tc.url)
		assert.Equal(t, tc.want, got, tc.name)
		assert.Equal(t, tc.want != "", ok, tc.name)
	}
}

func TestGitHelpers(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "https://github.com/o/r.git", httpsURL("git@github.com:o/r.git"))
	assert.Equal(t, "https://h/x", httpsURL("https://h/x"))
	assert.Equal(t, "clone https://host/r.git: failed", redactURL("clone https://tok:secret@host/r.git: failed"))
	assert.Equal(t, "r", repoBaseName("git@github.com:o/r.git"))
	assert.Equal(t, "proj", repoBaseName("file:///tmp/proj/"))
}

func TestSplitArgs(t *testing.T) {
	t.Parallel()
	got, err := SplitArgs(`-run 'Test A' -v "x \"y\"" a\ b ./...`)
	require.NoError(t, err)
	assert.Equal(t, []string{"-run", "Test A", "-v", `x "y"`, "a b", "./..."}, got)
	_, err = SplitArgs(`'open`)
	assert.ErrorContains(t, err, "unterminated")
}

func TestPytestName(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "tests.test_a.TestB::test_c[1-2]", pytestName("tests/test_a.py::TestB::test_c[1-2]"))
	assert.Equal(t, "test_x::test_y", pytestName("test_x.py::test_y"))
}

func TestNoEscape(t *testing.T) {
	t.Parallel()
	ws := newWS(t, false)
	require.NoError(t, os.Symlink(t.TempDir(), filepath.Join(ws.Dir, "out")))
	require.NoError(t, os.Mkdir(filepath.Join(ws.Dir, "in"), 0o755))
	assert.NoError(t, ws.NoEscape(filepath.Join(ws.Dir, "in", "new", "deeper")))
	assert.ErrorContains(t, ws.NoEscape(filepath.Join(ws.Dir, "out", "repo")), "leads out of the job workspace")
	ws.Local = true
	assert.NoError(t, ws.NoEscape(filepath.Join(ws.Dir, "out", "repo")))
}
