package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/blob"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// Artifacts and caches: agents upload them through kkd, which streams the
// bytes straight into the blob store (never holding a whole file) while it
// computes their sha256; agents never see the blob store or its credentials.
// A blob key is unique per upload, so an upload that fails or turns out to
// be stale is deleted without touching the blob of an existing record.

// Limits of artifact paths and cache keys.
const (
	maxArtifactPath    = 1024
	maxPathSegment     = 255 // a file name on common file systems
	maxCacheKey        = 512
	defaultCacheExpiry = 10 * 24 * time.Hour
	maxCacheExpiry     = 365 * 24 * time.Hour
	// expiredCachesPerPut is how many expired cache entries a cache upload
	// removes on the way (with their blobs).
	expiredCachesPerPut = 16
)

// artifactRoutes registers the routes of artifacts and caches (pkg/api/assets.go).
func (s *Server) artifactRoutes(p string, pub, user, agent func(string, handlerFunc)) {
	user("GET "+p+"/flows/{id}/artifacts", s.listFlowArtifacts)
	user("GET "+p+"/runs/{id}/artifacts", s.listRunArtifacts)
	user("GET "+p+"/artifacts/{id}", s.getArtifact)
	user("GET "+p+"/artifacts/{id}/content", s.artifactContent)
	pub("GET /public/artifacts/{id}/{name...}", s.publicArtifact)
	agent("PUT "+p+"/agent/jobs/{id}/artifacts", s.agentPutArtifact)
	agent("GET "+p+"/agent/jobs/{id}/artifacts", s.agentListArtifacts)
	agent("GET "+p+"/agent/jobs/{id}/artifacts/{aid}", s.agentGetArtifact)
	agent("PUT "+p+"/agent/jobs/{id}/cache", s.agentPutCache)
	agent("GET "+p+"/agent/jobs/{id}/cache", s.agentGetCache)
}

// blobs returns the blob store or a 503 when kkd runs without one.
func (s *Server) blobs() (blob.Store, error) {
	if s.cfg.Blobs == nil {
		return nil, api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "kkd has no blob store configured (kkd serve --storage)")
	}
	return s.cfg.Blobs, nil
}

// checkArtifactPath validates an artifact's path: relative, forward
// slashes, no "." or ".." or empty segment, UTF-8 without control
// characters, at most maxArtifactPath bytes and maxPathSegment per segment.
func checkArtifactPath(p string) error {
	const hint = "give the file's path relative to the upload's root with forward slashes, e.g. dist/app.tar.gz"
	switch {
	case p == "":
		return badRequest("path is missing: %s", hint)
	case len(p) > maxArtifactPath:
		return badRequest("path is %d bytes long, more than %d: use a shorter path", len(p), maxArtifactPath)
	case !utf8.ValidString(p):
		return badRequest("path %q is not valid UTF-8: %s", p, hint)
	case strings.HasPrefix(p, "/"):
		return badRequest("path %q is absolute: %s", p, hint)
	case strings.Contains(p, "\\"):
		return badRequest("path %q contains a backslash: %s", p, hint)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return badRequest("path %q contains a control character (NUL, newline, ...): rename the file", p)
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch {
		case seg == "":
			return badRequest("path %q has an empty segment (a double or trailing slash): %s", p, hint)
		case seg == "." || seg == "..":
			return badRequest("path %q contains %q: %s", p, seg, hint)
		case len(seg) > maxPathSegment:
			return badRequest("path %q has a segment of %d bytes, more than %d: use shorter file names", p, len(seg), maxPathSegment)
		}
	}
	return nil
}

func checkCacheKey(k string) error {
	switch {
	case k == "":
		return badRequest("key is missing: give the cache's key, e.g. key=deps-<hash of the lock file>")
	case len(k) > maxCacheKey:
		return badRequest("cache key is %d bytes long, more than %d: hash long keys", len(k), maxCacheKey)
	case !utf8.ValidString(k):
		return badRequest("cache key %q is not valid UTF-8", k)
	}
	for _, r := range k {
		if r < 0x20 || r == 0x7f {
			return badRequest("cache key %q contains a control character", k)
		}
	}
	return nil
}

// attemptParam reads ?attempt=N.
func attemptParam(q url.Values) (int, error) {
	v := q.Get("attempt")
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, badRequest("attempt=%q: give the assignment's attempt number (>= 1)", v)
	}
	return n, nil
}

// flagParam reads an optional 0/1 query parameter.
func flagParam(q url.Values, name string) (bool, error) {
	switch v := q.Get(name); v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	default:
		return false, badRequest("%s=%q: use 0 or 1", name, v)
	}
}

// uploadID makes blob keys unique per upload.
func uploadID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// putBlob streams the request body into the blob store under key and
// returns its size and sha256. On error nothing is left under key.
func (s *Server) putBlob(r *http.Request, bs blob.Store, key string) (int64, string, error) {
	h := sha256.New()
	body := &hashingReader{r: r.Body, h: h}
	info, err := bs.Put(r.Context(), key, body, r.ContentLength)
	if err != nil {
		s.deleteBlob(r.Context(), bs, key)
		switch {
		case body.err != nil && r.Context().Err() == nil:
			return 0, "", badRequest("reading the upload failed after %d bytes: %v: send it again", body.n, body.err)
		case errors.Is(err, ci.ErrInvalid):
			return 0, "", badRequest("upload: %v", err)
		}
		return 0, "", fmt.Errorf("store upload %s: %w", key, err)
	}
	if info.Size != body.n {
		s.deleteBlob(r.Context(), bs, key)
		return 0, "", fmt.Errorf("store upload %s: %d bytes read, %d stored", key, body.n, info.Size)
	}
	return info.Size, hex.EncodeToString(h.Sum(nil)), nil
}

// deleteBlob removes a blob that no record names (a failed or replaced
// upload), also when the request's context ended.
func (s *Server) deleteBlob(ctx context.Context, bs blob.Store, key string) {
	if err := bs.Delete(context.WithoutCancel(ctx), key); err != nil {
		s.cfg.Logger.Warn("delete unused blob", "key", key, "err", err)
	}
}

type hashingReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	err error // the body's own read error
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		h.err = err
	}
	return n, err
}

// apiArtifact is the wire form of a; URL is absolute, based on the request.
func apiArtifact(r *http.Request, a store.Artifact) api.Artifact {
	out := api.Artifact{
		ID: a.ID, FlowID: a.FlowID, RunID: a.RunID, JobID: a.JobID, Stage: a.Stage, Path: a.Path,
		Size: a.Size, SHA256: a.SHA256, Public: a.Public, ReportEntry: a.ReportEntry, Created: a.Created,
	}
	if a.Public {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		out.URL = scheme + "://" + r.Host + publicArtifactPath(a)
	}
	return out
}

func publicArtifactPath(a store.Artifact) string {
	segs := strings.Split(a.Path, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return "/public/artifacts/" + strconv.FormatInt(a.ID, 10) + "/" + strings.Join(segs, "/")
}

func apiArtifacts(r *http.Request, as []store.Artifact) []api.Artifact {
	out := make([]api.Artifact, len(as))
	for i, a := range as {
		out[i] = apiArtifact(r, a)
	}
	return out
}

// serveBlob streams a blob as the response body.
func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request, key string, size int64, contentType string, header func(http.Header)) error {
	bs, err := s.blobs()
	if err != nil {
		return err
	}
	rc, err := bs.Get(r.Context(), key)
	if errors.Is(err, ci.ErrNotFound) {
		s.cfg.Logger.Error("blob of a record is missing", "key", key, "err", err)
		return notFoundf("the stored file is missing from the blob store (%s)", bs)
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("X-Content-Type-Options", "nosniff")
	if header != nil {
		header(h)
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	if n, err := io.Copy(w, rc); err != nil && r.Context().Err() == nil {
		// The status is sent: the client sees a short body.
		s.cfg.Logger.Warn("stream blob", "key", key, "bytes", n, "err", err)
	}
	return nil
}

// User routes.

func (s *Server) listFlowArtifacts(w http.ResponseWriter, r *http.Request) error {
	f, err := s.flowByID(r)
	if err != nil {
		return err
	}
	as, err := s.cfg.Store.ListFlowArtifacts(r.Context(), f.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiArtifacts(r, as))
}

func (s *Server) listRunArtifacts(w http.ResponseWriter, r *http.Request) error {
	run, err := s.runByID(r)
	if err != nil {
		return err
	}
	as, err := s.cfg.Store.ListRunArtifacts(r.Context(), run.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiArtifacts(r, as))
}

func (s *Server) artifactByID(r *http.Request) (store.Artifact, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return store.Artifact{}, err
	}
	a, err := s.cfg.Store.GetArtifact(r.Context(), id)
	if errors.Is(err, ci.ErrNotFound) {
		return a, notFoundf("artifact %d does not exist: list them with `kk artifacts list FLOW`", id)
	}
	return a, err
}

func (s *Server) getArtifact(w http.ResponseWriter, r *http.Request) error {
	a, err := s.artifactByID(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiArtifact(r, a))
}

func (s *Server) artifactContent(w http.ResponseWriter, r *http.Request) error {
	a, err := s.artifactByID(r)
	if err != nil {
		return err
	}
	return s.serveBlob(w, r, a.BlobKey, a.Size, "application/octet-stream", func(h http.Header) {
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(a.Path)}))
		h.Set("ETag", `"`+a.SHA256+`"`)
	})
}

// publicArtifact serves a public artifact without a token. {name...} is the
// artifact's path; another path names a public artifact of the same job, so
// the relative links of a published report (index.html → style.css) work.
// Anything that is not a public artifact is "not found", whether it exists
// or not.
func (s *Server) publicArtifact(w http.ResponseWriter, r *http.Request) error {
	hidden := notFoundf("no public artifact at %s", r.URL.Path)
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return hidden
	}
	name := r.PathValue("name")
	a, err := s.cfg.Store.GetArtifact(r.Context(), id)
	if errors.Is(err, ci.ErrNotFound) {
		return hidden
	}
	if err != nil {
		return err
	}
	if name != a.Path {
		if checkArtifactPath(name) != nil {
			return hidden
		}
		a, err = s.cfg.Store.GetJobArtifact(r.Context(), a.JobID, name)
		if errors.Is(err, ci.ErrNotFound) {
			return hidden
		}
		if err != nil {
			return err
		}
	}
	if !a.Public {
		return hidden
	}
	ctype := mime.TypeByExtension(path.Ext(a.Path))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	return s.serveBlob(w, r, a.BlobKey, a.Size, ctype, func(h http.Header) {
		// Published pages run in a sandbox: their scripts get an opaque
		// origin, never kkd's.
		h.Set("Content-Security-Policy", "sandbox allow-scripts allow-popups allow-forms")
		h.Set("ETag", `"`+a.SHA256+`"`)
	})
}

// Agent routes.

func (s *Server) agentPutArtifact(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	attempt, err := attemptParam(q)
	if err != nil {
		return err
	}
	p := q.Get("path")
	if err := checkArtifactPath(p); err != nil {
		return err
	}
	public, err := flagParam(q, "public")
	if err != nil {
		return err
	}
	report, err := flagParam(q, "report_entry")
	if err != nil {
		return err
	}
	bs, err := s.blobs()
	if err != nil {
		return err
	}
	j, err := s.agentJob(r, attempt)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("artifacts/%d/%d/%d/%s/%s", j.FlowID, j.RunID, j.ID, uploadID(), p)
	if len(key) > blob.MaxKeyLen {
		return badRequest("path is too long (%d bytes) to be stored: use a path of at most %d bytes", len(p), len(p)-(len(key)-blob.MaxKeyLen))
	}
	size, sum, err := s.putBlob(r, bs, key)
	if err != nil {
		return err
	}
	a := store.Artifact{JobID: j.ID, Path: p, Size: size, SHA256: sum, Public: public || report, ReportEntry: report, BlobKey: key}
	// The store fences the record in its own transaction: an attempt that
	// became stale during the upload records nothing.
	replaced, err := s.cfg.Store.CreateArtifact(r.Context(), &a, attempt)
	if err != nil {
		s.deleteBlob(r.Context(), bs, key)
		return staleOr(err)
	}
	if replaced != "" {
		s.deleteBlob(r.Context(), bs, replaced)
	}
	s.cfg.Logger.Info("artifact stored", "job_id", j.ID, "artifact_id", a.ID, "path", a.Path, "bytes", a.Size)
	return writeJSON(w, http.StatusCreated, apiArtifact(r, a))
}

func (s *Server) agentListArtifacts(w http.ResponseWriter, r *http.Request) error {
	attempt, err := attemptParam(r.URL.Query())
	if err != nil {
		return err
	}
	j, err := s.agentJob(r, attempt)
	if err != nil {
		return err
	}
	as, err := s.cfg.Store.ListFlowArtifacts(r.Context(), j.FlowID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiArtifacts(r, as))
}

func (s *Server) agentGetArtifact(w http.ResponseWriter, r *http.Request) error {
	attempt, err := attemptParam(r.URL.Query())
	if err != nil {
		return err
	}
	j, err := s.agentJob(r, attempt)
	if err != nil {
		return err
	}
	aid, err := pathID(r, "aid")
	if err != nil {
		return err
	}
	a, err := s.cfg.Store.GetArtifact(r.Context(), aid)
	if errors.Is(err, ci.ErrNotFound) || err == nil && a.FlowID != j.FlowID {
		return notFoundf("artifact %d is not an artifact of flow %d (a job only gets the artifacts of its own flow)", aid, j.FlowID)
	}
	if err != nil {
		return err
	}
	return s.serveBlob(w, r, a.BlobKey, a.Size, "application/octet-stream", func(h http.Header) {
		h.Set("ETag", `"`+a.SHA256+`"`)
	})
}

// jobBranch returns the project and branch of job j (the scope of caches).
func (s *Server) jobBranch(ctx context.Context, j ci.Job) (ci.Branch, error) {
	f, err := s.cfg.Store.GetFlow(ctx, j.FlowID)
	if err != nil {
		return ci.Branch{}, err
	}
	return s.cfg.Store.GetBranch(ctx, f.BranchID)
}

func (s *Server) agentPutCache(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	attempt, err := attemptParam(q)
	if err != nil {
		return err
	}
	key := q.Get("key")
	if err := checkCacheKey(key); err != nil {
		return err
	}
	expiry := defaultCacheExpiry
	if v := q.Get("expiry"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n > int64(maxCacheExpiry/time.Second) {
			return badRequest("expiry=%q: give the cache's lifetime in seconds, from 1 to %d (default %d, 10 days)",
				v, int64(maxCacheExpiry/time.Second), int64(defaultCacheExpiry/time.Second))
		}
		expiry = time.Duration(n) * time.Second
	}
	bs, err := s.blobs()
	if err != nil {
		return err
	}
	j, err := s.agentJob(r, attempt)
	if err != nil {
		return err
	}
	b, err := s.jobBranch(r.Context(), j)
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(key))
	blobKey := fmt.Sprintf("caches/%d/%d/%s-%s", b.ProjectID, b.ID, hex.EncodeToString(sum[:]), uploadID())
	size, sha, err := s.putBlob(r, bs, blobKey)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	e := store.CacheEntry{Key: key, Size: size, SHA256: sha, BlobKey: blobKey, Created: now, Expires: now.Add(expiry)}
	replaced, err := s.cfg.Store.PutCache(r.Context(), j.ID, attempt, &e)
	if err != nil {
		s.deleteBlob(r.Context(), bs, blobKey)
		return staleOr(err)
	}
	if replaced != "" {
		s.deleteBlob(r.Context(), bs, replaced)
	}
	s.deleteExpiredCaches(r.Context(), bs, now)
	s.cfg.Logger.Info("cache stored", "job_id", j.ID, "branch_id", b.ID, "key", key, "bytes", size)
	return writeJSON(w, http.StatusCreated, api.CacheEntry{Key: e.Key, Size: e.Size, Created: e.Created, Expires: e.Expires})
}

// deleteExpiredCaches removes a few expired entries and their blobs.
func (s *Server) deleteExpiredCaches(ctx context.Context, bs blob.Store, now time.Time) {
	ctx = context.WithoutCancel(ctx)
	gone, err := s.cfg.Store.DeleteExpiredCaches(ctx, now, expiredCachesPerPut)
	if err != nil {
		s.cfg.Logger.Warn("delete expired caches", "err", err)
		return
	}
	for _, e := range gone {
		s.deleteBlob(ctx, bs, e.BlobKey)
	}
}

func (s *Server) agentGetCache(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	attempt, err := attemptParam(q)
	if err != nil {
		return err
	}
	key := q.Get("key")
	if err := checkCacheKey(key); err != nil {
		return err
	}
	j, err := s.agentJob(r, attempt)
	if err != nil {
		return err
	}
	b, err := s.jobBranch(r.Context(), j)
	if err != nil {
		return err
	}
	e, err := s.cfg.Store.GetCache(r.Context(), b.ID, key, s.cfg.Now())
	if errors.Is(err, ci.ErrNotFound) {
		return notFoundf("no cache entry %q for branch %s (never saved, or expired)", key, b.Name)
	}
	if err != nil {
		return err
	}
	return s.serveBlob(w, r, e.BlobKey, e.Size, "application/gzip", func(h http.Header) {
		h.Set("ETag", `"`+e.SHA256+`"`)
	})
}
