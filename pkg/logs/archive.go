package logs

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/kraken-go/kk/pkg/blob"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/dbhealth"
	"github.com/kraken-go/kk/pkg/store"
)

// Archived logs
//
// Once a job completed its log never changes: the Archiver copies it from
// the store's chunks into one gzip blob, logs/<job>.gz, and then deletes the
// chunks. The blob is written completely (blob stores commit atomically)
// before the chunks are deleted, so a crash in between loses nothing: the
// sweep at start archives every completed job that still has chunks.
//
// The archive keeps the chunks' positions, so Stream renders it exactly as
// it renders chunks (step headers, attempt separators, ?step=N). Inside the
// gzip stream:
//
//	"KKLOG1\n"
//	uvarint len, JSON archiveHeader (job, attempts and their agents, steps)
//	frames: uvarint attempt (>= 1), uvarint step, uvarint seq, uvarint len, len bytes
//	uvarint 0 (end: an archive without it is truncated)
//
// Frames come in the store's order (attempt, step, seq).

// ArchiveKey is the blob key of a job's archived log.
func ArchiveKey(jobID int64) string { return fmt.Sprintf("logs/%d.gz", jobID) }

const archiveMagic = "KKLOG1\n"

// maxFrame bounds a frame's length when reading (chunks are at most a few
// MiB; a larger length means a corrupt archive).
const maxFrame = 64 << 20

// archivePage is how many chunks the archiver reads at a time.
const archivePage = 64

type archiveHeader struct {
	JobID    int64            `json:"job_id"`
	Attempts int              `json:"attempts"`
	Agents   map[int]string   `json:"agents,omitempty"` // attempt → agent name
	Steps    []archiveStepRef `json:"steps"`
}

type archiveStepRef struct {
	Index int    `json:"index"`
	Tool  string `json:"tool,omitempty"`
	Name  string `json:"name,omitempty"`
}

// writeArchive writes job's archived log (all its chunks) to w.
func writeArchive(ctx context.Context, st store.Store, w io.Writer, job ci.Job) error {
	attempts, err := st.ListJobAttempts(ctx, job.ID)
	if err != nil {
		return fmt.Errorf("read attempts: %w", err)
	}
	h := archiveHeader{JobID: job.ID, Attempts: job.Attempt, Agents: map[int]string{}, Steps: []archiveStepRef{}}
	for _, a := range attempts {
		h.Agents[a.Attempt] = a.Agent
	}
	for _, s := range job.Steps {
		h.Steps = append(h.Steps, archiveStepRef{Index: s.Index, Tool: s.Tool, Name: s.Name})
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(w)
	bw := bufio.NewWriterSize(zw, 64<<10)
	var num [4 * binary.MaxVarintLen64]byte
	_, _ = bw.WriteString(archiveMagic)
	_, _ = bw.Write(binary.AppendUvarint(num[:0], uint64(len(hj))))
	_, _ = bw.Write(hj)
	after := store.LogPos{}
	for {
		chunks, err := st.ReadLogs(ctx, job.ID, -1, -1, after, archivePage)
		if err != nil {
			return fmt.Errorf("read chunks: %w", err)
		}
		for _, c := range chunks {
			if c.Attempt < 1 || c.Step < 0 || c.Seq < 0 {
				return fmt.Errorf("chunk at attempt %d step %d seq %d: invalid position", c.Attempt, c.Step, c.Seq)
			}
			b := binary.AppendUvarint(num[:0], uint64(c.Attempt))
			b = binary.AppendUvarint(b, uint64(c.Step))
			b = binary.AppendUvarint(b, uint64(c.Seq))
			b = binary.AppendUvarint(b, uint64(len(c.Data)))
			if _, err := bw.Write(b); err != nil {
				return err
			}
			if _, err := bw.Write(c.Data); err != nil {
				return err
			}
			after = store.LogPos{Attempt: c.Attempt, Step: c.Step, Seq: c.Seq}
		}
		if len(chunks) < archivePage {
			break
		}
	}
	if err := bw.WriteByte(0); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return zw.Close()
}

// archiveReader reads an archive's frames.
type archiveReader struct {
	zr     *gzip.Reader
	br     *bufio.Reader
	header archiveHeader
	body   io.LimitedReader // the current frame's data
}

type frame struct {
	attempt int
	step    int
	seq     int64
	size    int64
}

func openArchive(r io.Reader) (*archiveReader, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("open log archive: %w", err)
	}
	ar := &archiveReader{zr: zr, br: bufio.NewReaderSize(zr, 32<<10)}
	magic := make([]byte, len(archiveMagic))
	if _, err := io.ReadFull(ar.br, magic); err != nil || string(magic) != archiveMagic {
		return nil, errors.New("open log archive: not a kk log archive")
	}
	n, err := binary.ReadUvarint(ar.br)
	if err != nil || n > 16<<20 {
		return nil, errors.New("open log archive: corrupt header")
	}
	hj := make([]byte, n)
	if _, err := io.ReadFull(ar.br, hj); err != nil {
		return nil, fmt.Errorf("open log archive: read header: %w", err)
	}
	if err := json.Unmarshal(hj, &ar.header); err != nil {
		return nil, fmt.Errorf("open log archive: header: %w", err)
	}
	return ar, nil
}

// next skips what is left of the current frame and reads the next frame's
// position; its data is then ar.body. io.EOF at the end marker.
func (ar *archiveReader) next() (frame, error) {
	if ar.body.N > 0 {
		if _, err := io.Copy(io.Discard, &ar.body); err != nil {
			return frame{}, ar.corrupt(err)
		}
	}
	var v [4]uint64
	for i := range v {
		x, err := binary.ReadUvarint(ar.br)
		if err != nil {
			return frame{}, ar.corrupt(err)
		}
		if i == 0 && x == 0 {
			return frame{}, io.EOF
		}
		v[i] = x
	}
	if v[1] > 1<<20 || v[3] > maxFrame || v[0] > 1<<20 || v[2] > 1<<62 {
		return frame{}, ar.corrupt(errors.New("implausible frame"))
	}
	f := frame{attempt: int(v[0]), step: int(v[1]), seq: int64(v[2]), size: int64(v[3])}
	ar.body = io.LimitedReader{R: ar.br, N: f.size}
	return f, nil
}

func (ar *archiveReader) corrupt(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("log archive of job %d is truncated or corrupt: %w", ar.header.JobID, err)
}

// job returns the archived job's steps and attempt count as a ci.Job.
func (ar *archiveReader) job() ci.Job {
	j := ci.Job{ID: ar.header.JobID, Attempt: ar.header.Attempts, State: ci.JobCompleted}
	for _, s := range ar.header.Steps {
		j.Steps = append(j.Steps, ci.Step{Index: s.Index, Tool: s.Tool, Name: s.Name})
	}
	return j
}

// ArchiverConfig configures an Archiver.
type ArchiverConfig struct {
	Store  store.Store
	Blobs  blob.Store
	Logger *slog.Logger
	// Concurrency bounds the archives written at once (default 2).
	Concurrency int
}

// Archiver moves the logs of completed jobs from the store's chunks to the
// blob store. JobCompleted never blocks its caller; Start sweeps the jobs
// that completed without being archived (kkd stopped or crashed first).
// Archiving a job twice is harmless, and the Archiver never runs two
// archives of the same job at once.
type Archiver struct {
	cfg ArchiverConfig
	sem chan struct{}

	mu       sync.Mutex
	ctx      context.Context // set by Start; nil before and after Stop
	wg       sync.WaitGroup
	inflight map[int64]bool
}

// NewArchiver returns an Archiver; call Start before JobCompleted.
func NewArchiver(cfg ArchiverConfig) *Archiver {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Archiver{cfg: cfg, sem: make(chan struct{}, cfg.Concurrency), inflight: map[int64]bool{}}
}

// Start enables archiving until ctx is done or Stop, and starts the sweep of
// completed jobs that still have chunks.
func (a *Archiver) Start(ctx context.Context) {
	a.mu.Lock()
	a.ctx = ctx
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		n, err := a.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			a.cfg.Logger.Log(ctx, dbhealth.Level(err), "log archive sweep failed", "err", err, "archived", n)
		} else if n > 0 {
			a.cfg.Logger.Info("log archive sweep done", "archived", n)
		}
	}()
}

// Stop stops accepting jobs and waits for the archives in progress (cancel
// Start's ctx first to abort them; their chunks stay for the next sweep).
func (a *Archiver) Stop() {
	a.mu.Lock()
	a.ctx = nil
	a.mu.Unlock()
	a.wg.Wait()
}

// JobCompleted archives the job's log in the background.
func (a *Archiver) JobCompleted(jobID int64) {
	a.mu.Lock()
	ctx := a.ctx
	if ctx == nil || a.inflight[jobID] {
		a.mu.Unlock()
		return
	}
	a.inflight[jobID] = true
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		defer a.done(jobID)
		select {
		case a.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-a.sem }()
		if err := a.archive(ctx, jobID); err != nil && ctx.Err() == nil {
			a.cfg.Logger.Log(ctx, dbhealth.Level(err), "archive job log; the next sweep retries it", "job_id", jobID, "err", err)
		}
	}()
}

func (a *Archiver) done(jobID int64) {
	a.mu.Lock()
	delete(a.inflight, jobID)
	a.mu.Unlock()
}

// Sweep archives, one at a time, every completed job that still has chunks.
func (a *Archiver) Sweep(ctx context.Context) (int, error) {
	n := 0
	var after int64
	for {
		ids, err := a.cfg.Store.ListArchivableLogs(ctx, after, 100)
		if err != nil {
			return n, err
		}
		for _, id := range ids {
			after = id
			if err := a.Archive(ctx, id); err != nil {
				if ctx.Err() != nil {
					return n, ctx.Err()
				}
				a.cfg.Logger.Log(ctx, dbhealth.Level(err), "archive job log", "job_id", id, "err", err)
				continue
			}
			n++
		}
		if len(ids) < 100 {
			return n, nil
		}
	}
}

// Archive archives the completed job's log now, unless an archive of the
// same job is in progress (it then returns nil: that one does the work).
func (a *Archiver) Archive(ctx context.Context, jobID int64) error {
	a.mu.Lock()
	if a.inflight[jobID] {
		a.mu.Unlock()
		return nil
	}
	a.inflight[jobID] = true
	a.mu.Unlock()
	defer a.done(jobID)
	return a.archive(ctx, jobID)
}

// archive writes the blob, then deletes the chunks.
func (a *Archiver) archive(ctx context.Context, jobID int64) error {
	job, err := a.cfg.Store.GetJob(ctx, jobID)
	if errors.Is(err, ci.ErrNotFound) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	if job.State != ci.JobCompleted {
		return fmt.Errorf("archive log of job %d: the job is %s, not completed: %w", jobID, job.State, ci.ErrConflict)
	}
	first, err := a.cfg.Store.ReadLogs(ctx, jobID, -1, -1, store.LogPos{}, 1)
	if err != nil {
		return err
	}
	if len(first) == 0 {
		return nil // no output, or archived already
	}
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		err := writeArchive(ctx, a.cfg.Store, pw, job)
		_ = pw.CloseWithError(err)
		werr <- err
	}()
	info, err := a.cfg.Blobs.Put(ctx, ArchiveKey(jobID), pr, -1)
	_ = pr.CloseWithError(errors.New("archive upload ended")) // unblocks the writer after a failed Put
	if wErr := <-werr; wErr != nil && err == nil {
		err = wErr // cannot happen (Put sees the writer's error), kept for safety
	}
	if err != nil {
		return fmt.Errorf("archive log of job %d: %w", jobID, err)
	}
	if err := a.cfg.Store.DeleteLogs(ctx, jobID); err != nil {
		return fmt.Errorf("archive log of job %d: archive written, chunks not deleted: %w", jobID, err)
	}
	a.cfg.Logger.Debug("job log archived", "job_id", jobID, "key", info.Key, "bytes", info.Size)
	return nil
}
