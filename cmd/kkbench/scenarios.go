package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kraken-go/kk/pkg/api"
)

// assigned is an assignment a simulated agent received. The agent does
// nothing else until done is closed; the scenario runs the job with it.
type assigned struct {
	agent *simAgent
	asg   api.Assignment
	at    time.Time
	done  chan struct{}
}

// fleet is a set of simulated agents holding work polls on one kkd.
type fleet struct {
	agents   []*simAgent
	requests atomic.Int64
	events   chan assigned
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// polls counts work polls the agents sent.
	polls atomic.Int64
}

// startFleet registers n agents (with at most 32 registrations at a time)
// and starts their work loops with the given poll wait.
func startFleet(ctx context.Context, logger *slog.Logger, d *daemon, n, wait int) (*fleet, error) {
	f := &fleet{events: make(chan assigned, n)}
	hc := &http.Client{Transport: newTransport(n)}
	f.agents = make([]*simAgent, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range n {
		g.Go(func() error {
			a, err := registerAgent(gctx, d.url, hc, fmt.Sprintf("sim-%04d", i), &f.requests)
			f.agents[i] = a
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("register %d simulated agents: %w", n, err)
	}
	lctx, cancel := context.WithCancel(ctx)
	f.cancel = cancel
	for _, a := range f.agents {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			err := a.workLoop(lctx, wait, func(ctx context.Context, a *simAgent, asg api.Assignment, at time.Time) {
				ev := assigned{agent: a, asg: asg, at: at, done: make(chan struct{})}
				select {
				case f.events <- ev:
				case <-ctx.Done():
					return
				}
				select {
				case <-ev.done:
				case <-ctx.Done():
				}
			}, &f.polls)
			if err != nil {
				logger.Warn("simulated agent stopped", "agent", a.name, "err", err)
			}
		}()
	}
	return f, nil
}

func (f *fleet) stop() {
	f.cancel()
	f.wg.Wait()
}

// next waits for the next assignment.
func (f *fleet) next(ctx context.Context, timeout time.Duration) (assigned, error) {
	select {
	case ev := <-f.events:
		return ev, nil
	case <-ctx.Done():
		return assigned{}, ctx.Err()
	case <-time.After(timeout):
		return assigned{}, fmt.Errorf("no job reached a simulated agent within %s", timeout)
	}
}

// percentile of sorted durations, in ms (nearest rank).
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}

// dispatchResult is the latency from a job's creation to its agent.
type dispatchResult struct {
	fromCreated  []time.Duration // job.created (server clock) → assignment received
	fromResponse []time.Duration // flow creation answered → assignment received (may be < 0)
}

// measureDispatch creates samples one-job flows, one at a time, with every
// agent of f idle, and measures when the job reaches its agent.
func measureDispatch(ctx context.Context, d *daemon, branchID int64, f *fleet, warmup, samples int) (dispatchResult, error) {
	var res dispatchResult
	for i := range warmup + samples {
		jobs, err := d.createFlow(ctx, branchID, 1)
		if err != nil {
			return res, err
		}
		answered := time.Now()
		ev, err := f.next(ctx, 10*time.Second)
		if err != nil {
			return res, err
		}
		if ev.asg.JobID != jobs[0].ID {
			return res, fmt.Errorf("agent got job %d, want %d", ev.asg.JobID, jobs[0].ID)
		}
		if i >= warmup {
			res.fromCreated = append(res.fromCreated, ev.at.Sub(jobs[0].Created))
			res.fromResponse = append(res.fromResponse, ev.at.Sub(answered))
		}
		err = ev.agent.runTrivial(ctx, ev.asg)
		close(ev.done)
		if err != nil {
			return res, fmt.Errorf("run job %d: %w", ev.asg.JobID, err)
		}
		// Let the agent hold its next poll: every sample starts with all
		// agents idle (a measurement window, not synchronisation).
		time.Sleep(20 * time.Millisecond)
	}
	slices.Sort(res.fromCreated)
	slices.Sort(res.fromResponse)
	return res, nil
}

// throughputResult is how fast n trivial jobs went from queued to completed.
type throughputResult struct {
	jobs     int
	create   time.Duration // the flow creation request (schema evaluation, n jobs inserted)
	elapsed  time.Duration // flow creation requested → last job completed
	errCount int
}

// measureThroughput queues one flow of n trivial jobs; f's agents run them as
// fast as kkd hands them out.
func measureThroughput(ctx context.Context, d *daemon, branchID int64, f *fleet, n int) (throughputResult, error) {
	res := throughputResult{jobs: n}
	var completed atomic.Int64
	var errs atomic.Int64
	all := make(chan struct{})
	var last atomic.Int64
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			select {
			case ev := <-f.events:
				go func() {
					defer close(ev.done)
					if err := ev.agent.runTrivial(runCtx, ev.asg); err != nil {
						errs.Add(1)
						return
					}
					last.Store(time.Now().UnixNano())
					if completed.Add(1) == int64(n) {
						close(all)
					}
				}()
			case <-runCtx.Done():
				return
			}
		}
	}()
	start := time.Now()
	if _, err := d.createFlow(ctx, branchID, n); err != nil {
		return res, err
	}
	res.create = time.Since(start)
	select {
	case <-all:
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(3 * time.Minute):
		return res, fmt.Errorf("only %d of %d jobs completed within 3 minutes (%d errors)", completed.Load(), n, errs.Load())
	}
	res.elapsed = time.Unix(0, last.Load()).Sub(start)
	res.errCount = int(errs.Load())
	cancel()
	return res, nil
}

// measureLogTail runs one job whose step prints lines lines, each holding the
// time it was sent, while a follower streams the job's log; it returns the
// delay from sending each line to the follower reading it.
func measureLogTail(ctx context.Context, d *daemon, branchID int64, f *fleet, lines int, gap time.Duration) ([]time.Duration, error) {
	jobs, err := d.createFlow(ctx, branchID, 1)
	if err != nil {
		return nil, err
	}
	ev, err := f.next(ctx, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer close(ev.done)
	hctx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go ev.agent.heartbeat(hctx, ev.asg)
	if err := ev.agent.begin(ctx, ev.asg); err != nil {
		return nil, err
	}
	body, err := d.admin.Logs(ctx, jobs[0].ID, nil, true)
	if err != nil {
		return nil, fmt.Errorf("follow the log: %w", err)
	}
	defer body.Close()
	ready := make(chan struct{})
	var delays []time.Duration
	readDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(body)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			now := time.Now()
			if !signalled && strings.Contains(line, "BENCH-READY") {
				close(ready)
				signalled = true
			}
			if _, ts, ok := strings.Cut(line, "BENCHTS "); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
				if err == nil {
					delays = append(delays, now.Sub(time.Unix(0, n)))
				}
			}
		}
		readDone <- sc.Err()
	}()
	if err := ev.agent.chunk(ctx, ev.asg, 0, []byte("BENCH-READY\n")); err != nil {
		return nil, err
	}
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		return nil, errors.New("the follower did not see the first line within 10s")
	}
	for i := 1; i <= lines; i++ {
		line := fmt.Sprintf("BENCHTS %d\n", time.Now().UnixNano())
		if err := ev.agent.chunk(ctx, ev.asg, i, []byte(line)); err != nil {
			return nil, err
		}
		time.Sleep(gap) // pacing of the step's output
	}
	if err := ev.agent.finish(ctx, ev.asg); err != nil {
		return nil, err
	}
	select {
	case err := <-readDone:
		if err != nil {
			return nil, fmt.Errorf("read the followed log: %w", err)
		}
	case <-time.After(30 * time.Second):
		return nil, errors.New("the followed log did not end within 30s of the job's completion")
	}
	if len(delays) != lines {
		return nil, fmt.Errorf("the follower saw %d of %d lines", len(delays), lines)
	}
	slices.Sort(delays)
	return delays, nil
}

// ingestResult is how many log bytes kkd accepted in how long.
type ingestResult struct {
	bytes   int64
	elapsed time.Duration
	writers int
}

// measureIngest runs writers jobs at once whose agents push chunkSize log
// chunks back to back for dur.
func measureIngest(ctx context.Context, d *daemon, branchID int64, f *fleet, writers, chunkSize int, dur time.Duration) (ingestResult, error) {
	res := ingestResult{writers: writers}
	if _, err := d.createFlow(ctx, branchID, writers); err != nil {
		return res, err
	}
	evs := make([]assigned, 0, writers)
	for range writers {
		ev, err := f.next(ctx, 10*time.Second)
		if err != nil {
			return res, err
		}
		evs = append(evs, ev)
	}
	chunk := logText(chunkSize)
	var total atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	deadline := start.Add(dur)
	var lastAck atomic.Int64
	for _, ev := range evs {
		g.Go(func() error {
			defer close(ev.done)
			hctx, stopHB := context.WithCancel(gctx)
			defer stopHB()
			go ev.agent.heartbeat(hctx, ev.asg)
			if err := ev.agent.begin(gctx, ev.asg); err != nil {
				return err
			}
			for seq := 0; time.Now().Before(deadline); seq++ {
				if err := ev.agent.chunk(gctx, ev.asg, seq, chunk); err != nil {
					return err
				}
				total.Add(int64(len(chunk)))
				lastAck.Store(time.Now().UnixNano())
			}
			return ev.agent.finish(gctx, ev.asg)
		})
	}
	if err := g.Wait(); err != nil {
		return res, fmt.Errorf("ingest: %w", err)
	}
	res.bytes = total.Load()
	res.elapsed = time.Unix(0, lastAck.Load()).Sub(start)
	return res, nil
}

// logText is size bytes of build-log-like lines.
func logText(size int) []byte {
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "2026-11-22T10:%02d:%02d.%03dZ [worker %d] compiling pkg/module%04d/file%03d.go ... ok (%d ms)\n",
			i/3600%60, i/60%60, i%1000, i%8, i%1000, i%97, i%250)
	}
	return []byte(b.String()[:size])
}
