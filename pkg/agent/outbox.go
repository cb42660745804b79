package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/redact"
)

// jobWriteMaxBackoff caps the retry delay of a job's writes and heartbeat, so
// delivery resumes within a few seconds of kkd coming back.
const jobWriteMaxBackoff = 5 * time.Second

// outbox carries one job attempt's writes to kkd: start, step results, log
// chunks and completion. Everything the job reports is appended to the
// attempt's spool (spool.go) and never waits for the network, so a job goes on
// while kkd is unreachable; a single sender (run) delivers the records
// strictly in the order they were appended, each retried with backoff until
// kkd answers it, and the next one waits. Consequently:
//   - log chunk K+1 of a step is sent only after chunk K was acknowledged;
//   - a step's final result follows its last chunk;
//   - completion, appended last, is sent only after every earlier record of
//     the attempt was acknowledged.
//
// Re-sending a record whose answer was lost is harmless: kkd treats a log
// chunk's (job, step, seq) and a completion as idempotent, and a step result
// is a state update. A record the agent got an answer for is never sent
// again, so from kkd's point of view each arrives exactly once.
//
// When a record is refused for good (stale attempt, revoked credential, job
// gone), onFatal is called once and nothing more is sent. Other refusals (a
// 400) are logged and the record is dropped.
//
// Per step, the stepWriter returned by writer cuts the output into chunks of
// chunkSize bytes, or flushDelay after the first unsent byte, so a live tail
// sees output within a fraction of a second. Seqs count 0, 1, 2... per step.
//
// Every byte of step output passes the job's redactor before it is spooled,
// and step result and completion messages are redacted too: no secret of the
// assignment reaches the spool or kkd (see redaction.go and pkg/redact).
type outbox struct {
	sp         *spool
	send       func(ctx context.Context, rec record) error // one attempt
	onFatal    func(err error)
	stopped    func() bool // the job was abandoned: stop sending
	log        *slog.Logger
	bo         backoff
	chunkSize  int
	flushDelay time.Duration
	red        redaction

	mu      sync.Mutex // serialises appends, so seqs follow the spool's order
	seqs    map[int]int64
	writers map[int]*stepWriter

	done chan struct{} // closed when run returns
	// Set by run before done is closed.
	drained     bool  // every record was answered
	completeErr error // kkd refused the completion (not fatally)
}

func newOutbox(sp *spool, send func(context.Context, record) error, onFatal func(error), stopped func() bool,
	log *slog.Logger, bo backoff, chunkSize int, flushDelay time.Duration, red redaction,
) *outbox {
	return &outbox{
		sp:         sp,
		send:       send,
		onFatal:    onFatal,
		stopped:    stopped,
		log:        log,
		bo:         bo,
		chunkSize:  chunkSize,
		flushDelay: flushDelay,
		red:        red,
		seqs:       map[int]int64{},
		writers:    map[int]*stepWriter{},
		done:       make(chan struct{}),
	}
}

// writer returns the step's writer (the same one on every call).
func (o *outbox) writer(step int) *stepWriter {
	o.mu.Lock()
	defer o.mu.Unlock()
	w, ok := o.writers[step]
	if !ok {
		w = &stepWriter{o: o, step: step, buf: make([]byte, 0, o.chunkSize), background: o.red.background[step]}
		w.red = redact.NewWriter(stepSink{w}, o.red.m)
		o.writers[step] = w
	}
	return w
}

// appendLog spools a chunk of a step's log under the step's next seq. It
// fails when the chunk could not be written to disk; the seq is then not used.
func (o *outbox) appendLog(step int, data []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	seq := o.seqs[step]
	if err := o.sp.append(record{kind: recLog, step: step, seq: seq, data: data}); err != nil {
		return err
	}
	o.seqs[step] = seq + 1
	return nil
}

// appendControl spools a start, step result or completion. These never fail
// for lack of disk (the spool keeps them in memory then).
func (o *outbox) appendControl(kind recordKind, step int, v any) {
	var data []byte
	if v != nil {
		var err error
		if data, err = json.Marshal(v); err != nil {
			o.log.Error("cannot encode "+kind.String(), "err", err)
			return
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.sp.append(record{kind: kind, step: step, data: data}); err != nil && !errors.Is(err, errSpoolClosed) {
		o.log.Error("cannot spool "+kind.String(), "err", err)
	}
}

func (o *outbox) appendStart() { o.appendControl(recStart, 0, nil) }

func (o *outbox) appendStep(idx int, r api.StepResult) {
	r.Message, r.Reason = o.red.text(r.Message), o.red.text(r.Reason)
	o.appendControl(recStep, idx, r)
}

func (o *outbox) appendComplete(c api.CompleteJob) {
	c.Message = o.red.text(c.Message)
	o.appendControl(recComplete, 0, c)
}

// run delivers the spooled records in order until the spool is closed and
// drained, a record is refused fatally, the job is abandoned or ctx ends.
func (o *outbox) run(ctx context.Context) {
	defer close(o.done)
	for {
		rec, err := o.sp.next(ctx)
		switch {
		case errors.Is(err, io.EOF):
			o.drained = true
			return
		case ctx.Err() != nil:
			return
		case err != nil:
			o.log.Error("cannot read the job's spool back; the rest of this job's logs and results is lost "+
				"(kkd requeues the job when its lease expires)", "err", err)
			return
		}
		if o.stopped() {
			return
		}
		err = o.deliver(ctx, rec)
		switch {
		case err == nil:
		case ctx.Err() != nil || errors.Is(err, errAbandoned):
			return
		case jobFatal(err):
			o.onFatal(err)
			return
		case rec.kind == recComplete:
			o.completeErr = err
		default:
			o.log.Error(rec.kind.String()+" rejected by kkd; dropping it", "err", err, "step", rec.step, "seq", rec.seq)
		}
		o.sp.ack()
	}
}

// errAbandoned: the job was abandoned while a record was being retried.
var errAbandoned = errors.New("job abandoned")

// deliver sends one record until kkd answers it: it returns nil when kkd
// accepted it and kkd's refusal otherwise. While kkd is unreachable it
// retries with backoff, logging the first failure and the recovery.
func (o *outbox) deliver(ctx context.Context, rec record) error {
	bo := o.bo
	var firstFail time.Time
	for n := 1; ; n++ {
		err := o.send(ctx, rec)
		if err == nil || !retryable(err) {
			if !firstFail.IsZero() && err == nil {
				o.log.Info("kkd reachable again; delivering the spooled backlog", "what", rec.kind.String(),
					"failed_for", time.Since(firstFail).Round(time.Millisecond), "tries", n)
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if o.stopped() {
			return errAbandoned
		}
		d := bo.next()
		if firstFail.IsZero() {
			firstFail = time.Now()
			o.log.Warn("cannot deliver "+rec.kind.String()+"; the job goes on and its output is spooled to disk",
				"err", err, "retry_in", d.Round(time.Millisecond))
		} else {
			o.log.Debug("deliver "+rec.kind.String()+" failed; retrying", "err", err, "retry_in", d.Round(time.Millisecond))
		}
		if !sleepCtx(ctx, d) {
			return ctx.Err()
		}
	}
}

// closeWriters flushes and closes every step writer; later writes are dropped.
func (o *outbox) closeWriters() {
	o.mu.Lock()
	ws := make([]*stepWriter, 0, len(o.writers))
	for _, w := range o.writers {
		ws = append(ws, w)
	}
	o.mu.Unlock()
	for _, w := range ws {
		w.close()
	}
}

// finish closes the writers and the spool and waits until run has delivered
// everything (or stopped). It returns an error when ctx ends first.
func (o *outbox) finish(ctx context.Context) error {
	o.closeWriters()
	o.sp.close()
	select {
	case <-o.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("deliver the job's logs and results: %w", ctx.Err())
	}
}

// stepWriter is the io.Writer of one step's output. It is safe for
// concurrent use (a background process may write while another step runs).
// It holds at most one chunk in memory; full chunks go to the spool at once.
type stepWriter struct {
	o    *outbox
	step int

	mu      sync.Mutex
	buf     []byte // unsent output, less than a chunk
	timer   *time.Timer
	closed  bool
	lost    int64 // bytes that could not be spooled since the last note
	lostErr error
	// red redacts the output on its way into buf (through stepSink); it
	// holds back a possible partial secret until later output decides it.
	red *redact.Writer
	// background: the step's process outlives the step's end, so only the
	// job's end releases what red holds back.
	background bool
}

// stepSink is where a step's redacted output goes: the writer's buffer.
// It is called with the stepWriter's mu held.
type stepSink struct{ w *stepWriter }

func (s stepSink) Write(p []byte) (int, error) {
	s.w.bufferLocked(p)
	return len(p), nil
}

// Write spools p; it never fails, so a command is never stopped by logging.
// Output that cannot be spooled (disk full) is counted and replaced by a note
// in the log. Writes after the job ended are dropped.
func (w *stepWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if w.closed || n == 0 {
		return n, nil
	}
	_, _ = w.red.Write(p) // stepSink never fails
	switch {
	case len(w.buf) == 0 && w.timer != nil:
		w.timer.Stop()
		w.timer = nil
	case len(w.buf) > 0 && w.timer == nil:
		w.timer = time.AfterFunc(w.o.flushDelay, w.flushTimer)
	}
	return n, nil
}

// bufferLocked appends redacted output to the buffer and spools full
// chunks; w.mu must be held.
func (w *stepWriter) bufferLocked(p []byte) {
	size := w.o.chunkSize
	for len(p) > 0 {
		k := min(size-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) >= size {
			w.emitLocked()
		}
	}
}

func (w *stepWriter) flushTimer() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	w.emitLocked()
}

// flush spools what is buffered now, at the step's end: the redactor
// releases the bytes it held back (the step's output is complete), except for
// a background step, whose process goes on writing.
func (w *stepWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked(!w.background)
}

// flushLocked spools the buffer, first releasing the redactor's held bytes
// when final; w.mu must be held.
func (w *stepWriter) flushLocked(final bool) {
	if final {
		_ = w.red.Flush() // stepSink never fails
	}
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.emitLocked()
}

// emitLocked spools the buffer as one chunk; w.mu must be held.
func (w *stepWriter) emitLocked() {
	if len(w.buf) == 0 {
		return
	}
	if w.lost > 0 {
		note := fmt.Sprintf("\n[kkagent: %d bytes of this step's output were lost: %v; free space in the agent's data dir]\n", w.lost, w.lostErr)
		if w.o.appendLog(w.step, []byte(note)) == nil {
			w.o.log.Warn("the job spool is writable again", "step", w.step, "lost_bytes", w.lost)
			w.lost, w.lostErr = 0, nil
		}
	}
	if w.lost == 0 {
		if err := w.o.appendLog(w.step, w.buf); err != nil {
			w.o.log.Error("cannot spool the step's output; dropping it until the spool is writable again", "step", w.step, "err", err)
			w.lostErr = err
			w.lost = int64(len(w.buf))
		}
	} else {
		w.lost += int64(len(w.buf))
	}
	w.buf = w.buf[:0]
}

// close flushes everything (the job ended) and drops later writes.
func (w *stepWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.flushLocked(true)
	w.closed = true
}
