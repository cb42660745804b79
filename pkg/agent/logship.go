package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// chunk is one piece of a step's log. (step, seq) identifies it; the server
// ignores a seq it already has, so re-sending after a failure is safe.
type chunk struct {
	step int
	seq  int64
	data []byte
}

// logShipper cuts each step's output into chunks and sends them, strictly in
// the order they were cut, from a single sender goroutine (run). A chunk that
// fails is retried with backoff until it is delivered; the next chunk waits.
//
// Per step, the stepWriter returned by writer buffers output and cuts a chunk
// when chunkSize bytes are buffered or flushDelay after the first unsent
// byte, so a live tail sees output within a fraction of a second. Seqs count
// 0, 1, 2... per step.
//
// When a chunk is refused for good (stale attempt, revoked credential, job
// gone), onFatal is called once and everything else is dropped.
type logShipper struct {
	send       func(ctx context.Context, c chunk) error // one attempt
	onFatal    func(err error)
	stopped    func() bool // the job was abandoned: stop sending
	log        *slog.Logger
	bo         backoff
	chunkSize  int
	flushDelay time.Duration

	mu      sync.Mutex
	queue   []chunk
	seqs    map[int]int64
	writers map[int]*stepWriter
	closed  bool // no more chunks: run returns when the queue is empty
	dead    bool // a fatal error: chunks are dropped
	wake    chan struct{}
	done    chan struct{} // closed when run returns
}

func newLogShipper(send func(context.Context, chunk) error, onFatal func(error), stopped func() bool, log *slog.Logger, bo backoff, chunkSize int, flushDelay time.Duration) *logShipper {
	return &logShipper{
		send:       send,
		onFatal:    onFatal,
		stopped:    stopped,
		log:        log,
		bo:         bo,
		chunkSize:  chunkSize,
		flushDelay: flushDelay,
		seqs:       map[int]int64{},
		writers:    map[int]*stepWriter{},
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
}

// writer returns the step's writer (the same one on every call).
func (s *logShipper) writer(step int) *stepWriter {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.writers[step]
	if !ok {
		w = &stepWriter{s: s, step: step}
		s.writers[step] = w
	}
	return w
}

// enqueue numbers a chunk and queues it for sending.
func (s *logShipper) enqueue(step int, data []byte) {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	seq := s.seqs[step]
	s.seqs[step] = seq + 1
	s.queue = append(s.queue, chunk{step: step, seq: seq, data: data})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run sends queued chunks in order until finish was called and the queue is
// empty, a fatal error happens, or ctx ends.
func (s *logShipper) run(ctx context.Context) {
	defer close(s.done)
	for {
		s.mu.Lock()
		for len(s.queue) == 0 {
			if s.closed || s.dead {
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			select {
			case <-s.wake:
			case <-ctx.Done():
				return
			}
			s.mu.Lock()
		}
		if s.stopped() {
			s.dead = true
			s.queue = nil
			s.mu.Unlock()
			return
		}
		c := s.queue[0]
		s.mu.Unlock()

		bo := s.bo
		err := retry(ctx, s.log, bo, "send log chunk", func(ctx context.Context) error { return s.send(ctx, c) })
		switch {
		case err == nil:
		case ctx.Err() != nil:
			s.log.Error("log chunks not delivered", "err", ctx.Err(), "step", c.step, "seq", c.seq)
			return
		case jobFatal(err):
			s.mu.Lock()
			s.dead = true
			s.queue = nil
			s.mu.Unlock()
			s.onFatal(err)
			return
		default:
			// The server refuses this chunk for good (e.g. 400): keep the rest flowing.
			s.log.Error("log chunk rejected; dropping it", "err", err, "step", c.step, "seq", c.seq)
		}
		s.mu.Lock()
		if len(s.queue) > 0 {
			s.queue = s.queue[1:]
		}
		s.mu.Unlock()
	}
}

// finish flushes and closes every step writer and waits until run has sent
// everything (or stopped). It returns an error when ctx ends first.
func (s *logShipper) finish(ctx context.Context) error {
	s.mu.Lock()
	ws := make([]*stepWriter, 0, len(s.writers))
	for _, w := range s.writers {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	for _, w := range ws {
		w.close()
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("deliver logs: %w", ctx.Err())
	}
}

// stepWriter is the io.Writer of one step's output. It is safe for
// concurrent use (a background process may write while another step runs).
type stepWriter struct {
	s    *logShipper
	step int

	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer
	closed bool
}

// Write buffers p; it never fails, so a command is never blocked by logging.
// Writes after the job ended are dropped.
func (w *stepWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(p) == 0 {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	size := w.s.chunkSize
	for len(w.buf) >= size {
		w.s.enqueue(w.step, append([]byte(nil), w.buf[:size]...))
		w.buf = append(w.buf[:0], w.buf[size:]...)
	}
	switch {
	case len(w.buf) == 0 && w.timer != nil:
		w.timer.Stop()
		w.timer = nil
	case len(w.buf) > 0 && w.timer == nil:
		w.timer = time.AfterFunc(w.s.flushDelay, w.flushTimer)
	}
	return len(p), nil
}

func (w *stepWriter) flushTimer() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	w.flushLocked()
}

// flush sends what is buffered now.
func (w *stepWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.flushLocked()
}

func (w *stepWriter) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	w.s.enqueue(w.step, w.buf)
	w.buf = nil
}

// close flushes and drops later writes.
func (w *stepWriter) close() {
	w.flush()
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
