// Package schema evaluates and validates Kraken stage schemas.
//
// A stage schema is Starlark source (go.starlark.net) that defines
// `def stage(ctx): return {...}`. Eval runs it in a sandbox, converts the
// returned dict to Go values, validates it the way Kraken's schemaval does
// (every object closed to unknown keys, every built-in tool's parameters
// checked) and returns a Stage with defaults filled in: parent "root",
// triggers {parent: true} when no trigger is given, empty parameter and job
// lists, executor "local", system always a list. Every failure comes back as
// Problems, all of them rather than the first, each with file:line:col.
//
// # The language
//
// Kraken schemas are Python run by RestrictedPython; this package runs them
// as Starlark with Python-friendly options: top-level if/for/while, while
// loops, set(), reassignment of globals and recursion are allowed.
// True/False/None, triple-quoted strings, comprehensions, str.format and %
// formatting work. Starlark's own % lacks Python's flags, width and precision,
// so every `x % y` is rewritten to a built-in that formats like Python
// ("%-10s", "%03d", "%.2f", "%(key)s", "%*d"); on numbers % stays modulo.
//
// ctx offers args, env, project, branch {name, branch_name}, branch_name,
// stage, flow {id, kind, seq {shared, own}, label, data, trigger}, run {id,
// seq, label}, is_ci, is_dev, secrets, flow_label and run_label. Its objects
// allow attribute access, indexing, get/keys/values/items, `in`, len and
// iteration. args, env, secrets and flow data/trigger are tolerant: a missing
// key reads as None, so `ctx.flow.data.targets or ["staging"]` and
// `ctx.args.race == "yes"` work on a first evaluation that has no data.
// Other objects are strict and a typo names the known fields. When the stage
// declares parameters whose defaults ctx.args lacked, Eval evaluates again
// with the defaults, as Kraken does; Stage.Args gives the same mapping to
// callers that create flows.
//
// Interpolate and InterpolateValue replace #{expr} in strings; expr is a
// Starlark expression over Context.Vars, which adds Kraken's legacy flat names
// (KK_FLOW_SEQ, KK_SECRET_SIMPLE_<name>, ...). EvalWhen decides a step's
// `when` condition (default "was_no_error"); ValidateWhen checks one at
// validation time. ParseCron, ParseInterval and ParseDate are the trigger
// parsers, shared with the planner.
//
// # The sandbox
//
// Stage code is untrusted. Starlark has no file, network, clock or
// environment access and none is added; load() is refused and print is
// discarded. Bounds:
//
//   - Limits.MaxSteps interpreter steps (default 10 million); the call depth
//     is capped at 5000 frames, checked every 1024 steps.
//   - Limits.Timeout milliseconds of wall time (default 5 s) and the caller's
//     context: a watchdog goroutine cancels the thread, which stops at its
//     next step.
//   - Limits.MaxMemory bytes of heap growth (default 256 MiB): the watchdog
//     polls the heap every 5 ms and, past the limit, runs a GC and cancels
//     if the live heap really grew that much.
//   - Work done inside one step is bounded too, since no step count or
//     cancellation reaches it: range() and the built-ins that consume a
//     whole iterable (list, tuple, sorted, set, dict, zip, min, max, any,
//     all, ...) refuse more than 4 Mi elements; `*` (rewritten like %)
//     refuses repetitions beyond 4 Mi elements or 64 MiB and integer
//     products beyond 2^20 bits; str.replace, join, format and split check
//     their output size first; str, repr, print, fail and %s refuse values
//     whose string form exceeds 64 MiB (an exponentially shared list).
//   - The source is at most 1 MiB; the returned value at most MaxResultBytes
//     (estimated in-memory size) and 64 levels deep, which also stops cycles
//     and exponentially shared lists.
//   - A panic anywhere in evaluation becomes an "internal error" problem.
//
// The memory bound is approximate: Go has no per-goroutine accounting, so it
// measures the whole process (a concurrent allocation elsewhere can stop an
// evaluation), and one operation such as doubling a large string allocates
// before the next check. Some one-step work stays unbounded: hashing a tuple
// built by repeated t = (t, t) takes exponential time. A server evaluating
// code from users it does not trust should also run Eval in a child process
// with OS CPU and memory limits.
//
// # Positions
//
// Syntax and resolve errors carry starlark's positions. Runtime errors are
// placed at the innermost call frame in the stage file (errors raised while a
// loop spins, such as the step limit, may only know the enclosing function).
// Validation problems are found in the returned dict, which has no positions,
// so the source is parsed again and every dict-literal entry with a string
// key, every element of a list literal under such a key, every `name = [...]`,
// `name.append(...)`, `d["key"] = ...` and `dict(key=...)` is indexed with its
// lexical key path. A problem's path (jobs[0].steps[1].cmdd) is matched
// against those from its end, preferring nodes with more matching keys and
// list indexes; when nothing matches (the key was computed), the problem
// points at the return statement of stage(). Locate exposes this matching to
// callers that check a Stage further and report their own Problems.
//
// # Differences from Kraken
//
//   - Starlark, not Python: no classes, imports, try/except, f-strings, or
//     `is`; strings are not iterable (use .elems()); %r and str() of a string
//     use double quotes.
//   - #{...} holds a Starlark expression, not Jinja; Jinja's lowercase true,
//     false and none are accepted, and a missing key renders as "" as in
//     Jinja. `when` conditions are also Starlark.
//   - The run timeout (top-level "timeout", seconds, at least 60) is accepted
//     and honoured; Kraken documents it but its schema rejects it.
//   - Step timeouts need only be at least 1 second (Kraken: 30); job timeouts
//     are at least 30 as in Kraken. Integer fields of steps may be #{...}
//     strings, interpolated when the job runs; job and run timeouts written
//     as #{...} are interpolated at evaluation.
//   - Cron rules use crontab semantics (day of week 0 or 7 is Sunday; a day
//     matching either restricted day field runs); Kraken hands them to
//     APScheduler, where 0 is Monday.
//   - Webhook triggers (github, gitlab, gitea, radicle) may appear in
//     triggers; they are kept in Triggers.Webhooks.
//   - Custom tools registered at run time are not known here: a step with an
//     unknown tool is a problem.
package schema
