package schema

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

const (
	// maxElems bounds the length of a range and of any sized argument of the
	// built-ins that materialise or scan a whole iterable without counting
	// execution steps (list(range(2**31)) would otherwise allocate 32 GiB in
	// one call that no step limit or cancellation can interrupt).
	maxElems = 1 << 22
	// memoryPoll is how often the watchdog samples the heap.
	memoryPoll = 5 * time.Millisecond
	// exprMaxSteps bounds #{...} and `when` expressions.
	exprMaxSteps = 100_000
	// stepQuantum is how often (in steps) a thread checks its call depth.
	stepQuantum = 1024
	// maxCallDepth bounds recursion well below Starlark's own 100000-frame
	// limit, whose huge goroutine stack makes every GC cycle slow.
	maxCallDepth = 5000
	// heapMetric is the cheap, immediate measure the memory watchdog polls:
	// bytes of heap objects, garbage included.
	heapMetric = "/memory/classes/heap/objects:bytes"
	// liveMetric is the live heap as of the last GC. When heapMetric has grown
	// past the limit, the watchdog runs a GC and checks this one, so that
	// garbage (made by anyone in the process) is not taken for a bomb.
	liveMetric = "/gc/heap/live:bytes"
	// minGCInterval rate-limits the GCs the watchdog forces.
	minGCInterval = 50 * time.Millisecond
)

// guardedBuiltins are the universe built-ins wrapped by sandboxBuiltins.
var guardedBuiltins = [...]string{
	"all", "any", "dict", "enumerate", "list", "max", "min",
	"reversed", "set", "sorted", "tuple", "zip",
}

// fileOptions are the dialect options: Kraken schemas are Python, so allow
// while, set, top-level control flow, global reassignment and recursion.
func fileOptions() *syntax.FileOptions {
	return &syntax.FileOptions{
		Set:             true,
		While:           true,
		TopLevelControl: true,
		GlobalReassign:  true,
		Recursion:       true,
	}
}

// sandboxBuiltins returns the predeclared names of sandboxed code: the
// targets of rewriteFile, and wrappers shadowing the universe built-ins able
// to do unbounded work in one step: range refuses more than maxElems
// elements, the materialising built-ins refuse sized arguments longer than
// that, and str, repr, print and fail refuse values whose string form would
// exceed maxStringBytes.
func sandboxBuiltins() starlark.StringDict {
	d := starlark.StringDict{
		percentFunc: starlark.NewBuiltin(percentFunc, percentBuiltin),
		mulFunc:     starlark.NewBuiltin(mulFunc, mulBuiltin),
		methodFunc:  starlark.NewBuiltin(methodFunc, methodBuiltin),
	}
	for _, name := range reprFuncs {
		d[name] = reprWrapped(name)
	}
	for _, name := range guardedBuiltins {
		orig := starlark.Universe[name].(*starlark.Builtin)
		d[name] = starlark.NewBuiltin(name, func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			for _, a := range args {
				if err := checkLen(name, a); err != nil {
					return nil, err
				}
			}
			for _, kv := range kwargs {
				if err := checkLen(name, kv[1]); err != nil {
					return nil, err
				}
			}
			return orig.CallInternal(th, args, kwargs)
		})
	}
	origRange := starlark.Universe["range"].(*starlark.Builtin)
	d["range"] = starlark.NewBuiltin("range", func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		r, err := origRange.CallInternal(th, args, kwargs)
		if err != nil {
			return nil, err
		}
		if err := checkLen("range", r); err != nil {
			return nil, err
		}
		return r, nil
	})
	return d
}

func checkLen(fn string, v starlark.Value) error {
	if n := starlark.Len(v); n > maxElems {
		return fmt.Errorf("%s: %d elements exceed the sandbox limit of %d", fn, n, maxElems)
	}
	return nil
}

// withDefaults fills zero limits.
func (l Limits) withDefaults() Limits {
	if l.MaxSteps == 0 {
		l.MaxSteps = DefaultMaxSteps
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeoutMS
	}
	if l.MaxMemory <= 0 {
		l.MaxMemory = DefaultMaxMemory
	}
	return l
}

// sandbox is a Starlark thread bounded by Limits. A watchdog goroutine
// cancels the thread on timeout, on ctx cancellation and when the heap grows
// by more than Limits.MaxMemory; the interpreter stops at its next step.
type sandbox struct {
	thread *starlark.Thread
	reason atomic.Pointer[string] // why the thread was cancelled, if it was
	stop   chan struct{}
	done   chan struct{}
}

// newSandbox starts the watchdog; call close when the evaluation ends.
func newSandbox(ctx context.Context, lim Limits) *sandbox {
	sb := &sandbox{stop: make(chan struct{}), done: make(chan struct{})}
	sb.thread = newThread("stage", lim.MaxSteps, sb.cancel)
	go sb.watch(ctx, lim)
	return sb
}

// newThread returns a thread that discards print output, refuses load, and
// calls cancel when it exceeds maxSteps or maxCallDepth. The depth is checked
// every stepQuantum steps, from the interpreter's OnMaxSteps hook.
func newThread(name string, maxSteps uint64, cancel func(reason string)) *starlark.Thread {
	th := &starlark.Thread{
		Name:  name,
		Print: func(*starlark.Thread, string) {},
		Load: func(*starlark.Thread, string) (starlark.StringDict, error) {
			// load statements are rejected before execution; this is a
			// second line of defence
			return nil, errors.New("load() is not allowed in stage code")
		},
	}
	th.SetMaxExecutionSteps(min(stepQuantum, maxSteps))
	th.OnMaxSteps = func(th *starlark.Thread) {
		switch {
		case th.ExecutionSteps() >= maxSteps:
			cancel(fmt.Sprintf("execution step limit (%d) exceeded", maxSteps))
		case th.CallStackDepth() > maxCallDepth:
			cancel(fmt.Sprintf("call depth limit (%d) exceeded (unbounded recursion?)", maxCallDepth))
		default:
			th.SetMaxExecutionSteps(min(th.ExecutionSteps()+stepQuantum, maxSteps))
		}
	}
	return th
}

func (sb *sandbox) cancel(reason string) {
	sb.reason.CompareAndSwap(nil, &reason)
	sb.thread.Cancel(reason)
}

// stopReason returns why the thread was cancelled, or "".
func (sb *sandbox) stopReason() string {
	if r := sb.reason.Load(); r != nil {
		return *r
	}
	return ""
}

// close stops the watchdog and waits for it; it is idempotent.
func (sb *sandbox) close() {
	select {
	case <-sb.stop:
	default:
		close(sb.stop)
	}
	<-sb.done
}

func (sb *sandbox) watch(ctx context.Context, lim Limits) {
	defer close(sb.done)
	timeout := time.Duration(lim.Timeout) * time.Millisecond
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	ticker := time.NewTicker(memoryPoll)
	defer ticker.Stop()
	base, baseLive := readMetric(heapMetric), readMetric(liveMetric)
	var lastGC time.Time
	for {
		select {
		case <-sb.stop:
			return
		case <-ctx.Done():
			sb.cancel("evaluation cancelled: " + ctx.Err().Error())
			return
		case <-timer.C:
			sb.cancel(fmt.Sprintf("timeout of %s exceeded", timeout))
			return
		case <-ticker.C:
			if grown(readMetric(heapMetric), base) <= lim.MaxMemory || time.Since(lastGC) < minGCInterval {
				continue
			}
			runtime.GC()
			lastGC = time.Now()
			if grown(readMetric(liveMetric), baseLive) > lim.MaxMemory {
				sb.cancel(fmt.Sprintf("memory limit (%d MiB) exceeded", lim.MaxMemory>>20))
				return
			}
		}
	}
}

// readMetric reads a uint64 runtime metric (0 if unsupported).
func readMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

func grown(now, base uint64) int64 { return int64(now) - int64(base) }
