package store

import (
	"context"
	"time"
)

// Artifact is a file a job stored (the artifacts tool). Its bytes are the
// blob BlobKey in the blob store (pkg/blob).
type Artifact struct {
	ID     int64
	FlowID int64
	RunID  int64
	JobID  int64
	// Stage is the stage name of the artifact's run (set by reads).
	Stage string
	// Path is relative, with forward slashes (validated by the server).
	Path        string
	Size        int64
	SHA256      string // hex
	Public      bool
	ReportEntry bool
	BlobKey     string
	Created     time.Time
}

// CacheEntry is a cache archive saved by a job of a branch, under a key.
type CacheEntry struct {
	BranchID int64
	Key      string
	Size     int64
	SHA256   string // hex
	BlobKey  string
	Created  time.Time
	Expires  time.Time
}

// ArtifactStore holds the records of artifacts and caches; their bytes live
// in the blob store. Rows go away with their job (artifacts) or branch
// (caches) through the cascades of DeleteProject, DeleteBranch; the blobs of
// such rows are not deleted by the store (a retention task collects them).
//
// Writes that replace a row return the replaced row's blob key, which the
// caller deletes from the blob store once the write committed: blob keys are
// unique per upload, so a replaced blob is never the new one.
type ArtifactStore interface {
	// CreateArtifact records an uploaded artifact of job a.JobID, fenced by
	// attempt in the same transaction (0: not fenced; else ErrStaleAttempt
	// unless it is the job's current attempt and the job is assigned or
	// running; ErrNotFound when the job does not exist). It sets a.ID,
	// a.RunID, a.FlowID, a.Stage and a.Created. An artifact of the same job
	// and Path is replaced (it keeps its ID); replaced is the old blob key,
	// "" when there was none.
	CreateArtifact(ctx context.Context, a *Artifact, attempt int) (replaced string, err error)
	GetArtifact(ctx context.Context, id int64) (Artifact, error)
	// GetJobArtifact returns the job's artifact of this path.
	GetJobArtifact(ctx context.Context, jobID int64, path string) (Artifact, error)
	// ListFlowArtifacts returns the artifacts of every run of the flow,
	// newest run first, then by job ID and path.
	ListFlowArtifacts(ctx context.Context, flowID int64) ([]Artifact, error)
	// ListRunArtifacts returns the run's artifacts by job ID and path.
	ListRunArtifacts(ctx context.Context, runID int64) ([]Artifact, error)
	// ListJobArtifacts returns the job's artifacts by path.
	ListJobArtifacts(ctx context.Context, jobID int64) ([]Artifact, error)

	// PutCache records a cache archive saved by job jobID, fenced by attempt
	// like CreateArtifact. The cache's scope is the job's branch: it sets
	// e.BranchID (and e.Created when zero). An entry of the same branch and
	// Key is replaced; replaced is its blob key ("" when there was none).
	PutCache(ctx context.Context, jobID int64, attempt int, e *CacheEntry) (replaced string, err error)
	// GetCache returns the branch's entry of key; ErrNotFound when there is
	// none or it expired (Expires <= now).
	GetCache(ctx context.Context, branchID int64, key string, now time.Time) (CacheEntry, error)
	// ListCaches returns the branch's entries, expired ones included, by key.
	ListCaches(ctx context.Context, branchID int64) ([]CacheEntry, error)
	// DeleteExpiredCaches deletes up to limit (0: all) entries that expired
	// (Expires <= now) and returns them, for the caller to delete their blobs.
	DeleteExpiredCaches(ctx context.Context, now time.Time, limit int) ([]CacheEntry, error)
}
