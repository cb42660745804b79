package daemon

import (
	"context"
	"log/slog"
	"sync"
)

// leaderTask is leader-only work that runs until its ctx ends (stage repo
// refreshes, retention).
type leaderTask struct {
	name string
	run  func(ctx context.Context)
}

// startLeaderTasks runs each task on its own goroutine; the returned func
// waits for them (they stop when ctx ends).
func startLeaderTasks(ctx context.Context, log *slog.Logger, tasks []leaderTask) func() {
	var wg sync.WaitGroup
	for _, t := range tasks {
		log.Info("leader: starting "+t.name, "task", t.name)
		wg.Go(func() { t.run(ctx) })
	}
	return wg.Wait
}
