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
	Step   int  // -1 for every step (with a header line before each step's output)
	Follow bool // keep streaming until the job is completed
}

// pageSize is how many chunks one read returns at most.
const pageSize = 256

// Stream writes the job's log to w. With Follow it returns when the job is
// completed and every chunk has been written, or when ctx is done. When w is
// an http.Flusher it is flushed after every batch.
//
// Each step has its own read position, because steps do not write in turn: a
// background step keeps appending to its log while later steps run. Whenever
// output comes from another step than the previous output, a header line names
// the step again. When the job starts over on a new attempt (it was requeued
// and its log discarded), a followed stream says so and shows the new
// attempt's log from its beginning.
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
	timer := time.NewTimer(fallback)
	defer timer.Stop()
	flusher, _ := w.(http.Flusher)
	after := map[int]int64{} // step → seq of the last chunk written
	headerStep := -1
	attempt := -1
	wrote := false
	for {
		// Read the job state before the chunks: if it is completed now, every
		// chunk was stored before, so the reads below get them all.
		job, err := s.Store.GetJob(ctx, jobID)
		if err != nil {
			return fmt.Errorf("get job %d: %w", jobID, err)
		}
		if job.Attempt != attempt {
			if wrote {
				if _, err := fmt.Fprintf(w, "==> job restarted: attempt %d\n", job.Attempt); err != nil {
					return err
				}
				clear(after)
				headerStep = -1
			}
			attempt = job.Attempt
		}
		written := 0
		for _, st := range job.Steps {
			if opts.Step >= 0 && st.Index != opts.Step {
				continue
			}
			n, err := s.copyStep(ctx, w, job, st.Index, after, &headerStep, opts.Step < 0)
			if err != nil {
				return err
			}
			written += n
		}
		wrote = wrote || written > 0
		if flusher != nil && written > 0 {
			flusher.Flush()
		}
		if !opts.Follow || job.State == ci.JobCompleted {
			return nil
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(fallback)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-timer.C:
		}
	}
}

// copyStep writes the step's chunks after after[step] and advances it; with
// headers it writes a header first when the previous output was another step's.
func (s *Service) copyStep(ctx context.Context, w io.Writer, job ci.Job, step int, after map[int]int64, headerStep *int, headers bool) (int, error) {
	n := 0
	for {
		pos, ok := after[step]
		if !ok {
			pos = -1
		}
		chunks, err := s.Store.ReadLogs(ctx, job.ID, step, step, pos, pageSize)
		if err != nil {
			return n, fmt.Errorf("read logs of job %d: %w", job.ID, err)
		}
		for _, c := range chunks {
			if headers && c.Step != *headerStep {
				if _, err := io.WriteString(w, stepHeader(job, c.Step)); err != nil {
					return n, err
				}
				*headerStep = c.Step
			}
			if _, err := w.Write(c.Data); err != nil {
				return n, err
			}
			after[step] = c.Seq
			n++
		}
		if len(chunks) < pageSize {
			return n, nil
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
