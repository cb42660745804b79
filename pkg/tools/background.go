package tools

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Background keeps the work of a job's background steps: processes that keep
// running after their step reported ok, until the job ends. The job runner
// creates one per job and calls Stop at job end, before closing the executor
// environment. It is safe for concurrent use.
type Background struct {
	mu      sync.Mutex
	stopped bool
	cancels []context.CancelFunc
	wg      sync.WaitGroup
}

// NewBackground returns an empty set of background work.
func NewBackground() *Background { return &Background{} }

// Go runs fn in a new goroutine. fn gets a context derived from ctx (the job's
// context) that Stop cancels; fn must return soon after it is done.
func (b *Background) Go(ctx context.Context, fn func(ctx context.Context)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return errors.New("start background process: the job is ending")
	}
	ctx, cancel := context.WithCancel(ctx)
	b.cancels = append(b.cancels, cancel)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer cancel()
		fn(ctx)
	}()
	return nil
}

// Stop cancels all background work and waits until it has returned, or until
// ctx is done. Later calls to Go fail. Stop is idempotent.
func (b *Background) Stop(ctx context.Context) error {
	b.mu.Lock()
	b.stopped = true
	for _, c := range b.cancels {
		c()
	}
	b.cancels = nil
	b.mu.Unlock()

	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop background processes: %w", ctx.Err())
	}
}
