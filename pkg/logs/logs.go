// Package logs ingests step output chunks and serves job logs, including a
// live tail that follows a running job until it completes.
//
// Chunks are stored in order per (job, step, seq) by the store; ingestion is
// idempotent. Followers subscribe to the job's key in the notify hub before
// reading, so a chunk stored between a read and the wait is never missed.
package logs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/notify"
	"github.com/kraken-go/kk/pkg/store"
)

// Key returns the hub key signalled when a job gets output or changes state.
func Key(jobID int64) string { return fmt.Sprintf("job:%d", jobID) }

// Service ingests and serves logs.
type Service struct {
	Store  store.Store
	Hub    *notify.Hub
	Logger *slog.Logger
	// Fallback is how often a follower re-checks the job without a signal
	// (a safety net; signals do the real work). Default 5 s.
	Fallback time.Duration
}

// Append stores one chunk and wakes the job's followers.
func (s *Service) Append(ctx context.Context, c ci.LogChunk) error {
	inserted, err := s.Store.AppendLog(ctx, c)
	if err != nil {
		return fmt.Errorf("append log chunk job %d step %d seq %d: %w", c.JobID, c.Step, c.Seq, err)
	}
	if inserted {
		s.Hub.Publish(Key(c.JobID))
	}
	return nil
}

// StreamOpts selects what Stream writes.
type StreamOpts struct {
	Step   int  // -1 for every step (with a header line before each step)
	Follow bool // keep streaming until the job is completed
}

// Stream writes the job's log to w. With Follow it returns when the job is
// completed and every chunk has been written, or when ctx is done. When w is
// an http.Flusher it is flushed after every batch.
func (s *Service) Stream(ctx context.Context, w io.Writer, jobID int64, opts StreamOpts) error {
	var wake <-chan struct{}
	if opts.Follow {
		ch, unsubscribe := s.Hub.Subscribe(Key(jobID))
		defer unsubscribe()
		wake = ch
	}
	fallback := s.Fallback
	if fallback <= 0 {
		fallback = 5 * time.Second
	}
	flusher, _ := w.(http.Flusher)
	afterStep, afterSeq := -1, int64(-1)
	headerStep := -1
	var job ci.Job
	for {
		// Read the job state before the chunks: if it is completed now, every
		// chunk was stored before, so the read below gets them all.
		var err error
		job, err = s.Store.GetJob(ctx, jobID)
		if err != nil {
			return fmt.Errorf("get job %d: %w", jobID, err)
		}
		for {
			chunks, err := s.Store.ReadLogs(ctx, jobID, opts.Step, afterStep, afterSeq, 256)
			if err != nil {
				return fmt.Errorf("read logs of job %d: %w", jobID, err)
			}
			for _, c := range chunks {
				if opts.Step < 0 && c.Step != headerStep {
					if _, err := io.WriteString(w, stepHeader(job, c.Step)); err != nil {
						return err
					}
					headerStep = c.Step
				}
				if _, err := w.Write(c.Data); err != nil {
					return err
				}
				afterStep, afterSeq = c.Step, c.Seq
			}
			if flusher != nil && len(chunks) > 0 {
				flusher.Flush()
			}
			if len(chunks) < 256 {
				break
			}
		}
		if !opts.Follow || job.State == ci.JobCompleted {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-time.After(fallback):
		}
	}
}

func stepHeader(job ci.Job, idx int) string {
	name, tool := "", ""
	for _, st := range job.Steps {
		if st.Index == idx {
			name, tool = st.Name, st.Tool
		}
	}
	h := fmt.Sprintf("==> step %d", idx)
	if tool != "" {
		h += ": " + tool
	}
	if name != "" {
		h += " (" + name + ")"
	}
	return h + "\n"
}
