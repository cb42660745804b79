package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/blob"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/logs"
	"github.com/kraken-go/kk/pkg/server"
	"github.com/kraken-go/kk/pkg/store"
)

// newBlobEnv is an env with a file blob store for artifacts, caches and
// archived logs, and a settable clock.
func newBlobEnv(t testing.TB) (*env, blob.Store, *clock) {
	t.Helper()
	bs, err := blob.OpenDir(t.TempDir())
	require.NoError(t, err)
	clk := &clock{now: time.Now()}
	e := newEnv(t, func(c *server.Config) {
		c.Blobs = bs
		c.Logs.Blobs = bs
		c.Now = clk.Now
	})
	return e, bs, clk
}

func blobKeys(t testing.TB, bs blob.Store, prefix string) []string {
	t.Helper()
	var keys []string
	for info, err := range bs.List(context.Background(), prefix) {
		require.NoError(t, err)
		keys = append(keys, info.Key)
	}
	return keys
}

func putArtifactPath(jobID int64, attempt int, path, extra string) string {
	return fmt.Sprintf("/agent/jobs/%d/artifacts?attempt=%d&path=%s%s", jobID, attempt, url.QueryEscape(path), extra)
}

func (e *env) upload(t testing.TB, a testAgent, jobID int64, path, extra, data string) api.Artifact {
	t.Helper()
	var out api.Artifact
	e.call(t, "PUT", putArtifactPath(jobID, 1, path, extra), data, a.cred).ok(t, http.StatusCreated, &out)
	return out
}

func hexSHA(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestArtifactUploadAndDownload(t *testing.T) {
	t.Parallel()
	e, bs, _ := newBlobEnv(t)
	a, j := e.runningJob(t, 1)
	job := e.job(t, j.ID)

	art := e.upload(t, a, j.ID, "dist/app.txt", "", "hello artifact\n")
	require.NotZero(t, art.ID)
	require.Equal(t, job.FlowID, art.FlowID)
	require.Equal(t, job.RunID, art.RunID)
	require.Equal(t, j.ID, art.JobID)
	require.Equal(t, "build", art.Stage)
	require.Equal(t, "dist/app.txt", art.Path)
	require.Equal(t, int64(len("hello artifact\n")), art.Size)
	require.Equal(t, hexSHA("hello artifact\n"), art.SHA256)
	require.False(t, art.Public)
	require.Empty(t, art.URL)

	// An upload of unknown length (chunked).
	pr, pw := io.Pipe()
	go func() {
		for range 100 {
			_, _ = io.WriteString(pw, strings.Repeat("c", 1000))
		}
		_ = pw.Close()
	}()
	req, err := http.NewRequest("PUT", e.base+putArtifactPath(j.ID, 1, "chunked.bin", ""), pr)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+a.cred)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var chunked api.Artifact
	readResponse(t, resp).ok(t, http.StatusCreated, &chunked)
	resp.Body.Close()
	require.Equal(t, int64(100_000), chunked.Size)
	require.Equal(t, hexSHA(strings.Repeat("c", 100_000)), chunked.SHA256)

	t.Run("user routes", func(t *testing.T) {
		for _, p := range []string{fmt.Sprintf("/flows/%d/artifacts", job.FlowID), fmt.Sprintf("/runs/%d/artifacts", job.RunID)} {
			var list []api.Artifact
			e.user(t, "GET", p, nil).ok(t, http.StatusOK, &list)
			require.Len(t, list, 2, p)
			require.Equal(t, "chunked.bin", list[0].Path)
			require.Equal(t, art, list[1])
		}
		var got api.Artifact
		e.user(t, "GET", fmt.Sprintf("/artifacts/%d", art.ID), nil).ok(t, http.StatusOK, &got)
		require.Equal(t, art, got)
		r := e.user(t, "GET", fmt.Sprintf("/artifacts/%d/content", art.ID), nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "hello artifact\n", string(r.body))
		require.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))
		require.Equal(t, `attachment; filename=app.txt`, r.header.Get("Content-Disposition"))
		e.user(t, "GET", "/artifacts/424242", nil).envelope(t, http.StatusNotFound, api.CodeNotFound)
		e.user(t, "GET", "/artifacts/424242/content", nil).envelope(t, http.StatusNotFound, api.CodeNotFound)
		e.user(t, "GET", "/flows/424242/artifacts", nil).envelope(t, http.StatusNotFound, api.CodeNotFound)
		e.call(t, "GET", fmt.Sprintf("/artifacts/%d/content", art.ID), nil, "").envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)
	})

	t.Run("agent routes", func(t *testing.T) {
		var list []api.Artifact
		e.call(t, "GET", fmt.Sprintf("/agent/jobs/%d/artifacts?attempt=1", j.ID), nil, a.cred).ok(t, http.StatusOK, &list)
		require.Len(t, list, 2)
		r := e.call(t, "GET", fmt.Sprintf("/agent/jobs/%d/artifacts/%d?attempt=1", j.ID, art.ID), nil, a.cred)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "hello artifact\n", string(r.body))
		e.call(t, "GET", fmt.Sprintf("/agent/jobs/%d/artifacts/424242?attempt=1", j.ID), nil, a.cred).envelope(t, http.StatusNotFound, api.CodeNotFound)
	})

	t.Run("same path replaces", func(t *testing.T) {
		before := blobKeys(t, bs, "artifacts/")
		again := e.upload(t, a, j.ID, "dist/app.txt", "", "new content")
		require.Equal(t, art.ID, again.ID)
		require.Equal(t, hexSHA("new content"), again.SHA256)
		r := e.user(t, "GET", fmt.Sprintf("/artifacts/%d/content", art.ID), nil)
		require.Equal(t, "new content", string(r.body))
		require.Len(t, blobKeys(t, bs, "artifacts/"), len(before), "the replaced blob is deleted")
	})
}

// TestArtifactOfAnotherFlow: an agent only gets the artifacts of its job's flow.
func TestArtifactOfAnotherFlow(t *testing.T) {
	t.Parallel()
	e, _, _ := newBlobEnv(t)
	a, j := e.runningJob(t, 1)
	art := e.upload(t, a, j.ID, "x.txt", "", "x")
	e.complete(t, a, j.ID)
	fx := fixture{branch: e.branch(t, "proj", "other")}
	e.stage(t, fx.branch.ID, "build", stageCode("all", 1))
	j2 := e.queueJob(t, fx)
	require.Equal(t, j2.ID, e.claim(t, a).JobID)
	ae := e.call(t, "GET", fmt.Sprintf("/agent/jobs/%d/artifacts/%d?attempt=1", j2.ID, art.ID), nil, a.cred).envelope(t, http.StatusNotFound, api.CodeNotFound)
	require.Contains(t, ae.Message, "its own flow")
	var list []api.Artifact
	e.call(t, "GET", fmt.Sprintf("/agent/jobs/%d/artifacts?attempt=1", j2.ID), nil, a.cred).ok(t, http.StatusOK, &list)
	require.Empty(t, list)
}

func TestArtifactBadInput(t *testing.T) {
	t.Parallel()
	e, bs, _ := newBlobEnv(t)
	a, j := e.runningJob(t, 1)
	tests := []struct {
		name, path, extra, want string
	}{
		{"no path", "", "", "path is missing"},
		{"absolute", "/etc/passwd", "", "is absolute"},
		{"dot dot", "../x", "", `contains ".."`},
		{"inner dot dot", "a/../../b", "", `contains ".."`},
		{"dot", "./a", "", `contains "."`},
		{"double slash", "a//b", "", "empty segment"},
		{"trailing slash", "a/", "", "empty segment"},
		{"backslash", `a\b`, "", "backslash"},
		{"nul", "a\x00b", "", "control character"},
		{"newline", "a\nb", "", "control character"},
		{"not utf-8", "a\xffb", "", "not valid UTF-8"},
		{"too long", strings.Repeat("a/", 512) + "b", "", "more than 1024"},
		{"long segment", strings.Repeat("n", 256), "", "segment of 256 bytes"},
		{"bad public", "ok.txt", "&public=yes", `public="yes"`},
		{"bad report entry", "ok.txt", "&report_entry=2", `report_entry="2"`},
	}
	before := e.snapshot(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ae := e.call(t, "PUT", putArtifactPath(j.ID, 1, tc.path, tc.extra), "data", a.cred).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
			require.Contains(t, ae.Message, tc.want)
		})
	}
	t.Run("bad attempt", func(t *testing.T) {
		ae := e.call(t, "PUT", fmt.Sprintf("/agent/jobs/%d/artifacts?path=x", j.ID), "data", a.cred).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
		require.Contains(t, ae.Message, "attempt")
	})
	e.unchanged(t, before)
	list, err := e.st.ListJobArtifacts(context.Background(), j.ID)
	require.NoError(t, err)
	require.Empty(t, list)
	require.Empty(t, blobKeys(t, bs, ""))
}

func TestArtifactStaleAttempt(t *testing.T) {
	t.Parallel()
	e, bs, _ := newBlobEnv(t)
	a, j := e.runningJob(t, 1)
	ctx := context.Background()

	t.Run("stale during the upload", func(t *testing.T) {
		pr, pw := io.Pipe()
		req, err := http.NewRequest("PUT", e.base+putArtifactPath(j.ID, 1, "late.bin", ""), pr)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+a.cred)
		done := make(chan response, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- response{status: -1, body: []byte(err.Error())}
				return
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			done <- response{status: resp.StatusCode, header: resp.Header, body: raw}
		}()
		_, err = pw.Write([]byte("first part"))
		require.NoError(t, err, "the server reads the body")
		// The watchdog requeues the job while the upload streams.
		_, _, err = e.st.FailAttempt(ctx, store.AttemptFailure{JobID: j.ID, Attempt: 1, At: time.Now(), Outcome: ci.JobAgentLost, Retry: true})
		require.NoError(t, err)
		_, _ = pw.Write([]byte("rest"))
		require.NoError(t, pw.Close())
		r := <-done
		r.header.Set("Content-Type", "application/json")
		r.envelope(t, http.StatusConflict, api.CodeStaleAttempt)
	})

	before := e.snapshot(t)
	for _, c := range []struct{ name, method, path string }{
		{"upload", "PUT", putArtifactPath(j.ID, 1, "x.txt", "")},
		{"list", "GET", fmt.Sprintf("/agent/jobs/%d/artifacts?attempt=1", j.ID)},
		{"download", "GET", fmt.Sprintf("/agent/jobs/%d/artifacts/1?attempt=1", j.ID)},
		{"cache put", "PUT", fmt.Sprintf("/agent/jobs/%d/cache?attempt=1&key=k", j.ID)},
		{"cache get", "GET", fmt.Sprintf("/agent/jobs/%d/cache?attempt=1&key=k", j.ID)},
	} {
		t.Run("requeued/"+c.name, func(t *testing.T) {
			var body any
			if c.method == "PUT" {
				body = "data"
			}
			e.call(t, c.method, c.path, body, a.cred).envelope(t, http.StatusConflict, api.CodeStaleAttempt)
		})
	}
	e.unchanged(t, before)
	list, err := e.st.ListJobArtifacts(ctx, j.ID)
	require.NoError(t, err)
	require.Empty(t, list, "a stale upload records nothing")
	require.Empty(t, blobKeys(t, bs, ""), "and leaves no blob")
}

func TestPublicArtifacts(t *testing.T) {
	t.Parallel()
	e, _, _ := newBlobEnv(t)
	a, j := e.runningJob(t, 1)
	page := e.upload(t, a, j.ID, "report/index.html", "&report_entry=1", "<h1>report</h1>")
	css := e.upload(t, a, j.ID, "report/style.css", "&public=1", "h1{}")
	private := e.upload(t, a, j.ID, "secret/key.txt", "", "private")
	require.True(t, page.Public, "report_entry implies public")
	require.True(t, page.ReportEntry)
	require.NotEmpty(t, page.URL)
	require.True(t, strings.HasSuffix(page.URL, fmt.Sprintf("/public/artifacts/%d/report/index.html", page.ID)), page.URL)

	get := func(t *testing.T, u string) response {
		t.Helper()
		resp, err := http.Get(u)
		require.NoError(t, err)
		defer resp.Body.Close()
		return readResponse(t, resp)
	}
	r := get(t, page.URL)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "<h1>report</h1>", string(r.body))
	require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "text/html"))
	require.Contains(t, r.header.Get("Content-Security-Policy"), "sandbox")

	// A relative link of the page reaches its sibling.
	base, err := url.Parse(page.URL)
	require.NoError(t, err)
	r = get(t, base.ResolveReference(&url.URL{Path: "style.css"}).String())
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "h1{}", string(r.body))
	require.Equal(t, css.SHA256, strings.Trim(r.header.Get("ETag"), `"`))

	root := strings.TrimSuffix(e.base, api.Prefix)
	missing := get(t, root+"/public/artifacts/424242/x.txt")
	require.Equal(t, http.StatusNotFound, missing.status)
	for name, u := range map[string]string{
		"private":                  fmt.Sprintf("%s/public/artifacts/%d/secret/key.txt", root, private.ID),
		"private sibling":          fmt.Sprintf("%s/public/artifacts/%d/secret/key.txt", root, page.ID),
		"wrong name":               fmt.Sprintf("%s/public/artifacts/%d/other.html", root, page.ID),
		"traversal":                fmt.Sprintf("%s/public/artifacts/%d/report/..%%2fsecret/key.txt", root, page.ID),
		"bad id":                   root + "/public/artifacts/abc/x",
		"nonexistent, same answer": root + "/public/artifacts/424242/secret/key.txt",
	} {
		t.Run(name, func(t *testing.T) {
			r := get(t, u)
			requireEnvelope(t, http.StatusNotFound, r.body, api.CodeNotFound)
			require.NotContains(t, string(r.body), "private")
			require.Equal(t, missing.status, r.status, "a hidden artifact looks like a missing one")
		})
	}
}

func TestCaches(t *testing.T) {
	t.Parallel()
	e, bs, clk := newBlobEnv(t)
	a, j := e.runningJob(t, 1)
	cachePath := func(jobID int64, key, extra string) string {
		return fmt.Sprintf("/agent/jobs/%d/cache?attempt=1&key=%s%s", jobID, url.QueryEscape(key), extra)
	}

	e.call(t, "GET", cachePath(j.ID, "deps", ""), nil, a.cred).envelope(t, http.StatusNotFound, api.CodeNotFound)
	var ce api.CacheEntry
	start := clk.Now()
	e.call(t, "PUT", cachePath(j.ID, "deps", ""), "tar.gz bytes", a.cred).ok(t, http.StatusCreated, &ce)
	require.Equal(t, "deps", ce.Key)
	require.Equal(t, int64(len("tar.gz bytes")), ce.Size)
	require.WithinDuration(t, start.Add(10*24*time.Hour), ce.Expires, time.Minute, "the default expiry is 10 days")
	r := e.call(t, "GET", cachePath(j.ID, "deps", ""), nil, a.cred)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "tar.gz bytes", string(r.body))

	// Saved again: replaced, the old blob is deleted.
	e.call(t, "PUT", cachePath(j.ID, "deps", "&expiry=60"), "newer", a.cred).ok(t, http.StatusCreated, &ce)
	require.WithinDuration(t, clk.Now().Add(time.Minute), ce.Expires, 5*time.Second)
	require.Len(t, blobKeys(t, bs, "caches/"), 1)
	r = e.call(t, "GET", cachePath(j.ID, "deps", ""), nil, a.cred)
	require.Equal(t, "newer", string(r.body))

	t.Run("expired entries are not served", func(t *testing.T) {
		clk.Add(61 * time.Second)
		ae := e.call(t, "GET", cachePath(j.ID, "deps", ""), nil, a.cred).envelope(t, http.StatusNotFound, api.CodeNotFound)
		require.Contains(t, ae.Message, "expired")
		// The next save removes it, with its blob.
		e.call(t, "PUT", cachePath(j.ID, "other", ""), "x", a.cred).ok(t, http.StatusCreated, nil)
		keys := blobKeys(t, bs, "caches/")
		require.Len(t, keys, 1)
		fl, err := e.st.GetFlow(context.Background(), e.job(t, j.ID).FlowID)
		require.NoError(t, err)
		list, err := e.st.ListCaches(context.Background(), fl.BranchID)
		require.NoError(t, err)
		require.Len(t, list, 1)
		for _, c := range list {
			require.NotEqual(t, "deps", c.Key)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		before := e.snapshot(t)
		nBlobs := len(blobKeys(t, bs, ""))
		for _, tc := range []struct{ name, path, want string }{
			{"no key", fmt.Sprintf("/agent/jobs/%d/cache?attempt=1", j.ID), "key is missing"},
			{"long key", cachePath(j.ID, strings.Repeat("k", 513), ""), "more than 512"},
			{"control key", cachePath(j.ID, "a\nb", ""), "control character"},
			{"zero expiry", cachePath(j.ID, "k", "&expiry=0"), "expiry="},
			{"huge expiry", cachePath(j.ID, "k", "&expiry=99999999999"), "expiry="},
			{"text expiry", cachePath(j.ID, "k", "&expiry=1d"), "in seconds"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ae := e.call(t, "PUT", tc.path, "data", a.cred).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
				require.Contains(t, ae.Message, tc.want)
			})
		}
		e.unchanged(t, before)
		require.Len(t, blobKeys(t, bs, ""), nBlobs)
	})

	t.Run("scoped to the branch", func(t *testing.T) {
		e.complete(t, a, j.ID)
		fx := fixture{branch: e.branch(t, "proj", "feature")}
		e.stage(t, fx.branch.ID, "build", stageCode("all", 1))
		j2 := e.queueJob(t, fx)
		require.Equal(t, j2.ID, e.claim(t, a).JobID)
		e.call(t, "GET", cachePath(j2.ID, "other", ""), nil, a.cred).envelope(t, http.StatusNotFound, api.CodeNotFound)
	})
}

func TestNoBlobStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, j := e.runningJob(t, 1)
	ae := e.call(t, "PUT", putArtifactPath(j.ID, 1, "x", ""), "x", a.cred).envelope(t, http.StatusServiceUnavailable, api.CodeUnavailable)
	require.Contains(t, ae.Message, "--storage")
}

// TestArchivedJobLogs: a completed job's log reads the same from its archive.
func TestArchivedJobLogs(t *testing.T) {
	t.Parallel()
	e, bs, _ := newBlobEnv(t)
	a, j := e.runningJob(t, 2)
	e.sendLog(t, a, j.ID, 0, 0, "zero\n")
	e.sendLog(t, a, j.ID, 1, 0, "one\n")
	e.complete(t, a, j.ID)
	queries := []string{"", "?step=0", "?step=1"}
	want := map[string]string{}
	for _, q := range queries {
		r := e.user(t, "GET", fmt.Sprintf("/jobs/%d/logs%s", j.ID, q), nil)
		require.Equal(t, http.StatusOK, r.status)
		want[q] = string(r.body)
	}
	arch := logs.NewArchiver(logs.ArchiverConfig{Store: e.st, Blobs: bs})
	require.NoError(t, arch.Archive(context.Background(), j.ID))
	chunks, err := e.st.ReadLogs(context.Background(), j.ID, -1, -1, store.LogPos{}, 0)
	require.NoError(t, err)
	require.Empty(t, chunks)
	for _, q := range queries {
		r := e.user(t, "GET", fmt.Sprintf("/jobs/%d/logs%s", j.ID, q), nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, want[q], string(r.body), q)
		require.True(t, bytes.Contains(r.body, []byte("\n")))
	}
}
