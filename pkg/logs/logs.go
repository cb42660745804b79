// Package logs ingests step output chunks and serves job logs, including a
// live tail that follows a running job until it completes.
//
// Chunks are stored in order per (job, attempt, step, seq) by the store, which
// fences them by attempt; ingestion is idempotent. Followers subscribe to the job's key in the notify hub before
// reading, so a chunk stored between a read and the wait is never missed.
package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/kraken-go/kk/pkg/blob"
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
	// Blobs holds the archived logs of completed jobs (see Archiver); nil:
	// logs are only read from the store's chunks.
	Blobs blob.Store
	// Fallback is how often a follower re-checks the job without a signal
	// (a safety net; signals do the real work). Default 5 s.
	Fallback time.Duration
}

// Append stores one chunk and wakes the job's followers.
func (s *Service) Append(ctx context.Context, c ci.LogChunk) error {
	inserted, err := s.Store.AppendLog(ctx, c)
	if err != nil {
		return fmt.Errorf("append log chunk job %d attempt %d step %d seq %d: %w", c.JobID, c.Attempt, c.Step, c.Seq, err)
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
// Every attempt of the job keeps its own log. When the job has more than one
// attempt, a separator line "==> attempt N (agent NAME)" precedes each
// attempt's output; a follower that started during attempt 1 shows attempt 1,
// then the separator of attempt 2 as soon as another agent took the job, then
// attempt 2 as it streams. An attempt's log is final once a later attempt
// exists (the store fences the old one's writes), so it is read to its end
// before the next one starts.
//
// Within an attempt each step has its own read position, because steps do
// not write in turn: a background step keeps appending to its log while later
// steps run. Whenever output comes from another step than the previous
// output, a header line names the step again.
//
// A completed job's log is read from its archive in the blob store once the
// Archiver wrote it, in constant memory. When the archive appears while the
// chunks are read (the Archiver then deletes them), the rest is read from it.
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
	st := &streamState{w: w, jobID: jobID, opts: opts, after: map[int]int64{}, headerStep: -1}
	first := true
	for {
		// Read the job state before the chunks: if it is completed now, every
		// chunk was stored before, so the reads below get them all; and if it
		// is at attempt N, every chunk of the attempts before N is stored.
		job, err := s.Store.GetJob(ctx, jobID)
		if err != nil {
			return fmt.Errorf("get job %d: %w", jobID, err)
		}
		if first && job.State == ci.JobCompleted {
			if ok, err := s.replayArchive(ctx, st, job); ok || err != nil {
				return err
			}
		}
		first = false
		written, err := s.copyAttempts(ctx, st, job)
		if err != nil {
			return err
		}
		if flusher != nil && written > 0 {
			flusher.Flush()
		}
		if job.State == ci.JobCompleted {
			// The chunks may have been archived (and deleted) while they
			// were read: the archive has the rest.
			_, err := s.replayArchive(ctx, st, job)
			return err
		}
		if !opts.Follow {
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

// streamState is where a Stream is in the job's log.
type streamState struct {
	w          io.Writer
	jobID      int64
	opts       StreamOpts
	attempt    int           // the attempt being written; 0 before the first
	after      map[int]int64 // step → seq of the last chunk written in attempt
	headerStep int           // step of the last header written in attempt
	agents     map[int]string
	buf        []byte // copy buffer of archived frames
}

// copyAttempts writes what is new in the job's log: the rest of the attempt
// being written, then every later attempt up to the job's current one, each
// after its separator.
func (s *Service) copyAttempts(ctx context.Context, st *streamState, job ci.Job) (int, error) {
	if job.Attempt == 0 {
		return 0, nil // no agent took the job yet
	}
	n := 0
	if st.attempt == 0 {
		st.attempt = 1
		if job.Attempt > 1 {
			if err := s.separator(ctx, st, job); err != nil {
				return n, err
			}
			n++
		}
	}
	for {
		for _, step := range job.Steps {
			if st.opts.Step >= 0 && step.Index != st.opts.Step {
				continue
			}
			k, err := s.copyStep(ctx, st, job, step.Index)
			if err != nil {
				return n, err
			}
			n += k
		}
		if st.attempt >= job.Attempt {
			return n, nil
		}
		// A later attempt exists: this one's log is complete.
		st.attempt++
		clear(st.after)
		st.headerStep = -1
		if err := s.separator(ctx, st, job); err != nil {
			return n, err
		}
		n++
	}
}

// separator writes the line that starts attempt st.attempt.
func (s *Service) separator(ctx context.Context, st *streamState, job ci.Job) error {
	if st.agents == nil || st.agents[st.attempt] == "" {
		attempts, err := s.Store.ListJobAttempts(ctx, job.ID)
		if err != nil {
			return fmt.Errorf("read attempts of job %d: %w", job.ID, err)
		}
		st.agents = map[int]string{}
		for _, a := range attempts {
			st.agents[a.Attempt] = a.Agent
		}
	}
	line := fmt.Sprintf("==> attempt %d", st.attempt)
	if name := st.agents[st.attempt]; name != "" {
		line += " (agent " + name + ")"
	}
	_, err := io.WriteString(st.w, line+"\n")
	return err
}

// copyStep writes the chunks of the step in attempt st.attempt that come
// after st.after[step] and advances it; with every step shown it writes a
// header first when the previous output was another step's.
func (s *Service) copyStep(ctx context.Context, st *streamState, job ci.Job, step int) (int, error) {
	headers := st.opts.Step < 0
	n := 0
	for {
		seq, ok := st.after[step]
		if !ok {
			seq = -1
		}
		pos := store.LogPos{Attempt: st.attempt, Step: step, Seq: seq}
		chunks, err := s.Store.ReadLogs(ctx, job.ID, st.attempt, step, pos, pageSize)
		if err != nil {
			return n, fmt.Errorf("read logs of job %d: %w", job.ID, err)
		}
		for _, c := range chunks {
			if headers && c.Step != st.headerStep {
				if _, err := io.WriteString(st.w, stepHeader(job, c.Step)); err != nil {
					return n, err
				}
				st.headerStep = c.Step
			}
			if _, err := st.w.Write(c.Data); err != nil {
				return n, err
			}
			st.after[step] = c.Seq
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

// replayArchive writes what st has not written yet of the job's archived log
// (all of it for a new stream). ok is false when there is no archive.
func (s *Service) replayArchive(ctx context.Context, st *streamState, job ci.Job) (ok bool, err error) {
	if s.Blobs == nil {
		return false, nil
	}
	rc, err := s.Blobs.Get(ctx, ArchiveKey(job.ID))
	if errors.Is(err, ci.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read log archive of job %d: %w", job.ID, err)
	}
	defer rc.Close()
	ar, err := openArchive(rc)
	if err != nil {
		return true, fmt.Errorf("job %d: %w", job.ID, err)
	}
	ajob := ar.job()
	if st.agents == nil {
		st.agents = map[int]string{}
	}
	for n, name := range ar.header.Agents {
		if st.agents[n] == "" {
			st.agents[n] = name
		}
	}
	if st.buf == nil {
		st.buf = make([]byte, 32<<10)
	}
	for {
		f, err := ar.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return true, err
		}
		if seq, done := st.after[f.step]; f.attempt < st.attempt || f.attempt == st.attempt && done && f.seq <= seq {
			continue // written from the chunks already
		}
		if err := s.enterAttempt(ctx, st, ajob, f.attempt); err != nil {
			return true, err
		}
		if st.opts.Step >= 0 && f.step != st.opts.Step {
			continue
		}
		if st.opts.Step < 0 && f.step != st.headerStep {
			if _, err := io.WriteString(st.w, stepHeader(ajob, f.step)); err != nil {
				return true, err
			}
			st.headerStep = f.step
		}
		if _, err := io.CopyBuffer(st.w, &ar.body, st.buf); err != nil {
			return true, err
		}
		st.after[f.step] = f.seq
	}
	return true, s.enterAttempt(ctx, st, ajob, ajob.Attempt)
}

// enterAttempt advances st to attempt n, writing the separator of every
// attempt it passes, as copyAttempts does.
func (s *Service) enterAttempt(ctx context.Context, st *streamState, job ci.Job, n int) error {
	if n == 0 {
		return nil
	}
	if st.attempt == 0 {
		st.attempt = 1
		if job.Attempt > 1 {
			if err := s.separator(ctx, st, job); err != nil {
				return err
			}
		}
	}
	for st.attempt < n {
		st.attempt++
		clear(st.after)
		st.headerStep = -1
		if err := s.separator(ctx, st, job); err != nil {
			return err
		}
	}
	return nil
}
