// Package retention deletes old data: per branch (ci.Retention, days
// counted from a flow's finish) flows with everything below them, job logs
// (database chunks and archived blobs) and artifacts (rows and blobs);
// webhook delivery records older than KeepDeliveries (30 days); and
// everywhere expired caches and blobs nothing refers to any more (left by
// deleted projects, branches and flows, or by a crash between a row's
// deletion and its blob's). The leader runs it daily (Loop); admins run it
// on demand (POST /api/v1/admin/retention, `kk retention run`).
//
// It is safe on a live system: the store only deletes data of completed
// flows (checked in the deleting transaction, so a rerun that reopens a
// flow wins), work is done in batches of Batch rows per transaction, and
// the blob GC leaves blobs younger than BlobGrace alone (an upload writes
// its blob before its row).
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/blob"
	"github.com/kraken-go/kk/pkg/logs"
	"github.com/kraken-go/kk/pkg/store"
)

// Config of an Enforcer.
type Config struct {
	Store  store.Store
	Blobs  blob.Store
	Logger *slog.Logger
	Now    func() time.Time // default time.Now
	// Batch is how many rows one transaction deletes (default 100).
	Batch int
	// BlobGrace: the GC keeps unreferenced blobs younger than this (default 24 h).
	BlobGrace time.Duration
	// Every is the Loop's interval (default 24 h).
	Every time.Duration
	// KeepDeliveries is how long webhook delivery records are kept
	// (default DeliveryRetention).
	KeepDeliveries time.Duration
}

// DeliveryRetention is how long a webhook delivery record is kept: far
// beyond the days within which forges retry and users redeliver, so that a
// redelivery is still told apart as a duplicate.
const DeliveryRetention = 30 * 24 * time.Hour

// Report is what a run deleted.
type Report = api.RetentionReport

// Enforcer applies retention.
type Enforcer struct{ cfg Config }

// New returns an Enforcer.
func New(cfg Config) *Enforcer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.BlobGrace <= 0 {
		cfg.BlobGrace = 24 * time.Hour
	}
	if cfg.Every <= 0 {
		cfg.Every = 24 * time.Hour
	}
	if cfg.KeepDeliveries <= 0 {
		cfg.KeepDeliveries = DeliveryRetention
	}
	return &Enforcer{cfg: cfg}
}

// Loop runs retention now and every Every until ctx ends (leader only).
func (e *Enforcer) Loop(ctx context.Context) {
	t := time.NewTicker(e.cfg.Every)
	defer t.Stop()
	for {
		if _, err := e.Run(ctx); err != nil && ctx.Err() == nil {
			e.cfg.Logger.Error("retention", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// Run applies retention once. Blob deletion errors are collected in the
// report (the GC of a later run retries them); a database error stops it.
func (e *Enforcer) Run(ctx context.Context) (Report, error) {
	start := time.Now()
	now := e.cfg.Now().UTC()
	var rep Report
	err := e.run(ctx, now, &rep)
	rep.Seconds = time.Since(start).Seconds()
	e.cfg.Logger.Info("retention done", "flows", rep.Flows, "jobs", rep.Jobs, "logs", rep.Logs, "log_bytes", rep.LogBytes,
		"artifacts", rep.Artifacts, "artifact_bytes", rep.ArtifactBytes, "caches", rep.Caches, "cache_bytes", rep.CacheBytes,
		"orphan_blobs", rep.OrphanBlobs, "orphan_bytes", rep.OrphanBytes, "deliveries", rep.Deliveries, "errors", len(rep.Errors), "seconds", rep.Seconds)
	return rep, err
}

func (e *Enforcer) run(ctx context.Context, now time.Time, rep *Report) error {
	if err := e.caches(ctx, now, rep); err != nil {
		return err
	}
	if err := e.deliveries(ctx, now.Add(-e.cfg.KeepDeliveries), rep); err != nil {
		return err
	}
	projects, err := e.cfg.Store.ListProjects(ctx)
	if err != nil {
		return fmt.Errorf("list projects: %w", err)
	}
	for _, p := range projects {
		branches, err := e.cfg.Store.ListBranches(ctx, p.ID)
		if err != nil {
			return fmt.Errorf("list branches of project %s: %w", p.Name, err)
		}
		for _, b := range branches {
			keep := b.Retention.Effective()
			if err := e.flows(ctx, b.ID, now.Add(-days(keep.KeepFlowsDays)), rep); err != nil {
				return err
			}
			if err := e.logs(ctx, b.ID, now.Add(-days(keep.KeepLogsDays)), rep); err != nil {
				return err
			}
			if err := e.artifacts(ctx, b.ID, now.Add(-days(keep.KeepArtifactsDays)), rep); err != nil {
				return err
			}
		}
	}
	return e.gc(ctx, now, rep)
}

func (e *Enforcer) deleteBlob(ctx context.Context, key string, rep *Report) {
	if err := e.cfg.Blobs.Delete(ctx, key); err != nil {
		rep.Errors = append(rep.Errors, fmt.Sprintf("delete blob %s: %v", key, err))
	}
}

// deleteLogArchive deletes a job's archived log and returns its size (0
// when it had none).
func (e *Enforcer) deleteLogArchive(ctx context.Context, jobID int64, rep *Report) int64 {
	key := logs.ArchiveKey(jobID)
	info, err := e.cfg.Blobs.Stat(ctx, key)
	if err != nil {
		return 0 // none (or unreadable: the GC retries)
	}
	e.deleteBlob(ctx, key, rep)
	return info.Size
}

func (e *Enforcer) caches(ctx context.Context, now time.Time, rep *Report) error {
	for {
		gone, err := e.cfg.Store.DeleteExpiredCaches(ctx, now, e.cfg.Batch)
		if err != nil {
			return fmt.Errorf("delete expired caches: %w", err)
		}
		for _, c := range gone {
			e.deleteBlob(ctx, c.BlobKey, rep)
			rep.Caches++
			rep.CacheBytes += c.Size
		}
		if len(gone) < e.cfg.Batch {
			return nil
		}
	}
}

// deliveries deletes the webhook delivery records received before t.
func (e *Enforcer) deliveries(ctx context.Context, before time.Time, rep *Report) error {
	for {
		n, err := e.cfg.Store.DeleteDeliveriesBefore(ctx, before, e.cfg.Batch)
		if err != nil {
			return err
		}
		rep.Deliveries += n
		if n < e.cfg.Batch {
			return nil
		}
	}
}

func (e *Enforcer) flows(ctx context.Context, branchID int64, before time.Time, rep *Report) error {
	for {
		p, err := e.cfg.Store.DeleteFlowsBefore(ctx, branchID, before, e.cfg.Batch)
		if err != nil {
			return err
		}
		if p.Flows == 0 {
			return nil
		}
		rep.Flows += p.Flows
		rep.Jobs += len(p.JobIDs)
		rep.LogBytes += p.LogBytes
		for _, id := range p.JobIDs {
			rep.LogBytes += e.deleteLogArchive(ctx, id, rep)
		}
		for _, a := range p.Artifacts {
			e.deleteBlob(ctx, a.BlobKey, rep)
			rep.Artifacts++
			rep.ArtifactBytes += a.Size
		}
		e.cfg.Logger.Info("retention: deleted flows", "branch_id", branchID, "flows", p.Flows, "jobs", len(p.JobIDs), "artifacts", len(p.Artifacts))
	}
}

func (e *Enforcer) logs(ctx context.Context, branchID int64, before time.Time, rep *Report) error {
	for {
		ids, size, err := e.cfg.Store.PurgeLogsBefore(ctx, branchID, before, e.cfg.Batch)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		rep.Logs += len(ids)
		rep.LogBytes += size
		for _, id := range ids {
			rep.LogBytes += e.deleteLogArchive(ctx, id, rep)
		}
	}
}

func (e *Enforcer) artifacts(ctx context.Context, branchID int64, before time.Time, rep *Report) error {
	for {
		gone, err := e.cfg.Store.DeleteArtifactsBefore(ctx, branchID, before, e.cfg.Batch)
		if err != nil {
			return err
		}
		if len(gone) == 0 {
			return nil
		}
		for _, a := range gone {
			e.deleteBlob(ctx, a.BlobKey, rep)
			rep.Artifacts++
			rep.ArtifactBytes += a.Size
		}
	}
}

// gc deletes blobs under logs/, artifacts/ and caches/ that no row refers
// to and that are older than BlobGrace.
func (e *Enforcer) gc(ctx context.Context, now time.Time, rep *Report) error {
	old := now.Add(-e.cfg.BlobGrace)
	for _, prefix := range []string{"logs/", "artifacts/", "caches/"} {
		var page []blob.Info
		flush := func() error {
			if len(page) == 0 {
				return nil
			}
			dead, err := e.unreferenced(ctx, prefix, page)
			page = page[:0]
			if err != nil {
				return err
			}
			for _, info := range dead {
				e.deleteBlob(ctx, info.Key, rep)
				rep.OrphanBlobs++
				rep.OrphanBytes += info.Size
			}
			return nil
		}
		for info, err := range e.cfg.Blobs.List(ctx, prefix) {
			if err != nil {
				return fmt.Errorf("list blobs %s: %w", prefix, err)
			}
			if info.Modified.After(old) {
				continue
			}
			page = append(page, info)
			if len(page) >= e.cfg.Batch*5 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return nil
}

// unreferenced returns the blobs of page (all under prefix) no row refers to.
func (e *Enforcer) unreferenced(ctx context.Context, prefix string, page []blob.Info) ([]blob.Info, error) {
	var dead []blob.Info
	if prefix == "logs/" {
		ids := make([]int64, 0, len(page))
		byID := map[int64]blob.Info{}
		for _, info := range page {
			id, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(info.Key, "logs/"), ".gz"), 10, 64)
			if err != nil || logs.ArchiveKey(id) != info.Key {
				continue // not an archive of ours
			}
			ids = append(ids, id)
			byID[id] = info
		}
		live, err := e.cfg.Store.JobsWithLogs(ctx, ids)
		if err != nil {
			return nil, fmt.Errorf("blob gc: %w", err)
		}
		for _, id := range ids {
			if !live[id] {
				dead = append(dead, byID[id])
			}
		}
		return dead, nil
	}
	keys := make([]string, len(page))
	for i, info := range page {
		keys[i] = info.Key
	}
	ref, err := e.cfg.Store.ReferencedBlobs(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("blob gc: %w", err)
	}
	for _, info := range page {
		if !ref[info.Key] {
			dead = append(dead, info)
		}
	}
	return dead, nil
}
