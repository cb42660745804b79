package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sync"
)

// Runs is the bookkeeping every Env needs to honour its contract: Run refuses
// to start after Close, Close aborts the commands that run (through Closing)
// and waits for them. The zero value is ready to use.
type Runs struct {
	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	running sync.WaitGroup
}

// ErrClosed is returned by Begin after Close.
var ErrClosed = errors.New("run command: environment is closed")

// Begin registers a starting command; call done when it has ended.
func (r *Runs) Begin() (done func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	r.running.Add(1)
	return r.running.Done, nil
}

// Closing is closed when Close is called: running commands must then stop.
func (r *Runs) Closing() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing == nil {
		r.closing = make(chan struct{})
	}
	return r.closing
}

// Close marks the environment closed, signals Closing (once) and waits for
// the running commands to end, or for ctx. It is idempotent.
func (r *Runs) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		if r.closing == nil {
			r.closing = make(chan struct{})
		}
		close(r.closing)
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		r.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close environment: wait for commands: %w", ctx.Err())
	}
}

// Start is the common opening of Env.Run: it refuses an empty argv,
// registers the command (Begin) and reports a context that is already done.
// When cancelled is true or err is set, nothing was registered and Run
// returns at once; otherwise Run must call end when the command has ended.
func (r *Runs) Start(ctx context.Context, cmd Command) (end func(), cancelled bool, err error) {
	if len(cmd.Argv) == 0 {
		return nil, false, errors.New("run command: empty argv")
	}
	end, err = r.Begin()
	if err != nil {
		return nil, false, err
	}
	if ctx.Err() != nil {
		end()
		return nil, true, nil
	}
	return end, false, nil
}

// Writer returns where the command's output goes: Output, or io.Discard.
func (c Command) Writer() io.Writer {
	if c.Output == nil {
		return io.Discard
	}
	return c.Output
}

// WorkDir returns the command's working directory: the workspace when Dir
// is empty, Dir when it is absolute, else Dir inside the workspace.
func (c Command) WorkDir(workspace string) string {
	switch {
	case c.Dir == "":
		return workspace
	case path.IsAbs(c.Dir):
		return c.Dir
	}
	return path.Join(workspace, c.Dir)
}
