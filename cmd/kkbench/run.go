package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kraken-go/kk/pkg/schema"
	"github.com/kraken-go/kk/pkg/store/pgtest"
)

// config is the command line.
type config struct {
	binDir     string
	stageFile  string
	agents     int
	idleAgents int
	samples    int
	jobs       int
	tailLines  int
	ingestDur  time.Duration
	idleWindow time.Duration
	keep       bool
	// only, when not empty, names the figures' groups to run (see parseFlags).
	only map[string]bool
}

// groups are the parts of the benchmark -only can select.
var groups = []string{"schema", "dispatch", "throughput", "tail", "ingest", "agent", "idle", "postgres"}

// want tells whether group g runs.
func (c config) want(g string) bool { return len(c.only) == 0 || c.only[g] }

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("kkbench", flag.ContinueOnError)
	fs.StringVar(&c.binDir, "bin", "bin", "directory with kk, kkd and kkagent (make build)")
	fs.StringVar(&c.stageFile, "stage", "pkg/schema/testdata/example_a.py", "typical stage code for schema_eval_ms")
	fs.IntVar(&c.agents, "agents", 50, "simulated agents for dispatch, throughput, tail and ingest")
	fs.IntVar(&c.idleAgents, "idle-agents", 1000, "simulated idle agents for the kkd footprint")
	fs.IntVar(&c.samples, "samples", 200, "dispatch samples")
	fs.IntVar(&c.jobs, "jobs", 2000, "trivial jobs for jobs_per_s")
	fs.IntVar(&c.tailLines, "tail-lines", 200, "log lines for log_tail_p99_ms")
	fs.DurationVar(&c.ingestDur, "ingest", 5*time.Second, "how long agents push logs for log_ingest_mib_s")
	fs.DurationVar(&c.idleWindow, "idle-window", 30*time.Second, "measurement window with idle agents (at least one poll period, 30s)")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory (kkd logs and data)")
	only := fs.String("only", "", "comma-separated parts to run (default all): "+strings.Join(groups, ", "))
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if *only != "" {
		c.only = map[string]bool{}
		for _, g := range strings.Split(*only, ",") {
			if !slices.Contains(groups, g) {
				return c, fmt.Errorf("-only %q: unknown part %q; use some of %s", *only, g, strings.Join(groups, ", "))
			}
			c.only[g] = true
		}
	}
	return c, nil
}

// figure is one measured value.
type figure struct {
	name   string
	value  float64
	unit   string
	target string // e.g. "<= 10"
	ok     func(v float64) bool
	how    string
}

// report collects figures and notes in order.
type report struct {
	figs  []figure
	notes []string
}

func (r *report) add(f figure) { r.figs = append(r.figs, f) }

func (r *report) notef(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func atMost(x float64) func(float64) bool  { return func(v float64) bool { return v <= x } }
func atLeast(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }

func (r *report) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tUNIT\tTARGET\tMET\tHOW")
	for _, f := range r.figs {
		met := "-"
		if f.ok != nil && !math.IsNaN(f.value) {
			met = "no"
			if f.ok(f.value) {
				met = "yes"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.name, fmtValue(f.value), f.unit, f.target, met, f.how)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, n := range r.notes {
		fmt.Fprintln(w, "note:", n)
	}
	fmt.Fprintln(w)
	for _, f := range r.figs {
		fmt.Fprintf(w, "BENCH %s %s %s\n", f.name, fmtValue(f.value), f.unit)
	}
}

func fmtValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.4f", v)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func run(ctx context.Context, logger *slog.Logger, cfg config, stdout io.Writer) error {
	start := time.Now()
	for _, b := range []string{"kkd", "kkagent"} {
		if _, err := os.Stat(filepath.Join(cfg.binDir, b)); err != nil {
			return fmt.Errorf("%s: %w (run `make build` first)", b, err)
		}
	}
	tmp, err := os.MkdirTemp("", "kkbench-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	if cfg.keep {
		logger.Info("keeping the temporary directory", "dir", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	var r report
	if cfg.want("schema") {
		if err := schemaEval(ctx, cfg, &r); err != nil {
			return err
		}
	}
	if cfg.want("dispatch") || cfg.want("throughput") || cfg.want("tail") || cfg.want("ingest") {
		logger.Info("SQLite: dispatch, throughput, log tail, ingest", "agents", cfg.agents)
		if err := agentSuite(ctx, logger, cfg, filepath.Join(tmp, "sqlite"), "", "sqlite", &r); err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
	}
	if cfg.want("agent") || cfg.want("idle") {
		logger.Info("idle footprint: one kkagent, then simulated idle agents", "agents", cfg.idleAgents)
		if err := idleSuite(ctx, logger, cfg, filepath.Join(tmp, "idle"), &r); err != nil {
			return fmt.Errorf("idle: %w", err)
		}
	}
	if cfg.want("postgres") {
		logger.Info("PostgreSQL: throughput")
		if err := postgresSuite(ctx, logger, cfg, filepath.Join(tmp, "postgres"), &r); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
	}
	r.notef("total benchmark time %s", time.Since(start).Round(time.Second))
	r.print(stdout)
	return nil
}

// schemaEval times schema.Eval of a typical stage.
func schemaEval(ctx context.Context, cfg config, r *report) error {
	code, err := os.ReadFile(cfg.stageFile)
	if err != nil {
		return fmt.Errorf("stage for schema_eval_ms: %w", err)
	}
	sc := schema.Context{IsCI: true, Project: "shop", Branch: "main", BranchName: "main", Stage: "tests",
		Flow: schema.FlowInfo{ID: 1, Kind: "CI", Seq: 1, KindSeq: 1}, Run: schema.RunInfo{ID: 1, Seq: 1}}
	for range 5 {
		if _, err := schema.Eval(ctx, filepath.Base(cfg.stageFile), code, sc, schema.Limits{}); err != nil {
			return fmt.Errorf("evaluate %s: %w", cfg.stageFile, err)
		}
	}
	n := 0
	begin := time.Now()
	for time.Since(begin) < 2*time.Second {
		if _, err := schema.Eval(ctx, filepath.Base(cfg.stageFile), code, sc, schema.Limits{}); err != nil {
			return fmt.Errorf("evaluate %s: %w", cfg.stageFile, err)
		}
		n++
	}
	r.add(figure{name: "schema_eval_ms", value: ms(time.Since(begin)) / float64(n), unit: "ms",
		how: fmt.Sprintf("schema.Eval of %s (CI flow), mean of %d", filepath.Base(cfg.stageFile), n)})
	return nil
}

// agentSuite runs dispatch, throughput, log tail and ingest against a kkd on
// db ("" for SQLite); backend names the figures.
func agentSuite(ctx context.Context, logger *slog.Logger, cfg config, dir, db, backend string, r *report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	d, err := startDaemon(ctx, cfg.binDir, dir, db)
	if err != nil {
		return err
	}
	defer d.proc.stop()
	branchID, err := d.setupBranch(ctx)
	if err != nil {
		return err
	}
	f, err := startFleet(ctx, logger, d, cfg.agents, 30)
	if err != nil {
		return err
	}
	defer f.stop()
	full := backend == "sqlite"
	if full && cfg.want("dispatch") {
		dr, err := measureDispatch(ctx, d, branchID, f, 10, cfg.samples)
		if err != nil {
			return fmt.Errorf("dispatch: %w", err)
		}
		how := fmt.Sprintf("job created (server clock) → assignment read by its agent; %d one-job flows, %d idle agents", len(dr.fromCreated), cfg.agents)
		r.add(figure{name: "dispatch_p50_ms", value: percentile(dr.fromCreated, 50), unit: "ms", target: "<= 10", ok: atMost(10), how: how})
		r.add(figure{name: "dispatch_p99_ms", value: percentile(dr.fromCreated, 99), unit: "ms", target: "<= 50", ok: atMost(50), how: how})
		r.notef("dispatch measured from the flow-creation response instead: p50 %.2f ms, p99 %.2f ms (negative: the agent had the job before the client had the answer)",
			percentile(dr.fromResponse, 50), percentile(dr.fromResponse, 99))
	}
	if !full || cfg.want("throughput") {
		if err := throughput(ctx, logger, cfg, d, branchID, f, backend, r); err != nil {
			return err
		}
	}
	if !full {
		return nil
	}
	if cfg.want("tail") {
		if err := logTail(ctx, logger, cfg, d, branchID, f, r); err != nil {
			return err
		}
	}
	if cfg.want("ingest") {
		return ingest(ctx, logger, cfg, d, branchID, f, r)
	}
	return nil
}

// throughput measures jobs_per_s_<backend>.
func throughput(ctx context.Context, logger *slog.Logger, cfg config, d *daemon, branchID int64, f *fleet, backend string, r *report) error {
	logger.Info("throughput", "backend", backend, "jobs", cfg.jobs)
	c0, err := readProcStat(d.proc.pid())
	if err != nil {
		return err
	}
	tr, err := measureThroughput(ctx, d, branchID, f, cfg.jobs)
	if err != nil {
		return fmt.Errorf("throughput: %w", err)
	}
	c1, err := readProcStat(d.proc.pid())
	if err != nil {
		return err
	}
	r.notef("jobs_per_s_%s: kkd used %.0f%% of one core meanwhile, %.2f ms of CPU per job", backend,
		100*(c1.cpu-c0.cpu).Seconds()/tr.elapsed.Seconds(), ms(c1.cpu-c0.cpu)/float64(tr.jobs))
	r.add(figure{name: "jobs_per_s_" + backend, value: float64(tr.jobs) / tr.elapsed.Seconds(), unit: "jobs/s", target: ">= 1000", ok: atLeast(1000),
		how: fmt.Sprintf("%d trivial jobs in one flow, %d agents: flow requested → last complete acknowledged (%s, of which flow creation %s)",
			tr.jobs, cfg.agents, tr.elapsed.Round(time.Millisecond), tr.create.Round(time.Millisecond))})
	return nil
}

// logTail measures log_tail_p50/p99_ms.
func logTail(ctx context.Context, logger *slog.Logger, cfg config, d *daemon, branchID int64, f *fleet, r *report) error {
	logger.Info("log tail", "lines", cfg.tailLines)
	delays, err := measureLogTail(ctx, d, branchID, f, cfg.tailLines, 10*time.Millisecond)
	if err != nil {
		return fmt.Errorf("log tail: %w", err)
	}
	how := fmt.Sprintf("chunk sent by the agent → line read by a GET logs?follow=1 follower, %d lines 10 ms apart", len(delays))
	r.add(figure{name: "log_tail_p50_ms", value: percentile(delays, 50), unit: "ms", how: how})
	r.add(figure{name: "log_tail_p99_ms", value: percentile(delays, 99), unit: "ms", target: "<= 100", ok: atMost(100), how: how})
	r.notef("log tail: kkagent sends a step's output at most 100 ms after it is printed (docs/agent-protocol.md), which adds up to 100 ms to log_tail_* for a real agent")
	return nil
}

// ingest measures log_ingest_mib_s.
func ingest(ctx context.Context, logger *slog.Logger, cfg config, d *daemon, branchID int64, f *fleet, r *report) error {
	logger.Info("log ingest", "for", cfg.ingestDur)
	c0, err := readProcStat(d.proc.pid())
	if err != nil {
		return err
	}
	ir, err := measureIngest(ctx, d, branchID, f, 4, 1<<20, cfg.ingestDur)
	if err != nil {
		return err
	}
	c1, err := readProcStat(d.proc.pid())
	if err != nil {
		return err
	}
	r.notef("log_ingest_mib_s: kkd used %.0f%% of one core meanwhile, %.1f ms of CPU per MiB",
		100*(c1.cpu-c0.cpu).Seconds()/ir.elapsed.Seconds(), ms(c1.cpu-c0.cpu)/(float64(ir.bytes)/(1<<20)))
	r.add(figure{name: "log_ingest_mib_s", value: float64(ir.bytes) / (1 << 20) / ir.elapsed.Seconds(), unit: "MiB/s", target: ">= 100", ok: atLeast(100),
		how: fmt.Sprintf("%d agents pushing 1 MiB chunks back to back for %s; bytes acknowledged / time", ir.writers, cfg.ingestDur)})
	return nil
}

// postgresSuite runs the throughput figure on a throwaway PostgreSQL.
func postgresSuite(ctx context.Context, logger *slog.Logger, cfg config, dir string, r *report) error {
	pg, err := pgtest.StartStandalone(ctx)
	if err != nil {
		reason := err.Error()
		if !errors.Is(err, pgtest.ErrMissing) {
			logger.Warn("PostgreSQL did not start", "err", err)
		}
		r.add(figure{name: "jobs_per_s_postgres", value: math.NaN(), unit: "jobs/s", target: ">= 1000", how: "not run"})
		r.notef("jobs_per_s_postgres not measured: %s", reason)
		return nil
	}
	defer func() {
		if err := pg.Stop(); err != nil {
			logger.Warn("stop PostgreSQL", "err", err)
		}
	}()
	return agentSuite(ctx, logger, cfg, dir, pg.URL(), "postgres", r)
}

// idleSuite measures one real idle kkagent, then kkd with many idle
// simulated agents.
func idleSuite(ctx context.Context, logger *slog.Logger, cfg config, dir string, r *report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	d, err := startDaemon(ctx, cfg.binDir, dir, "")
	if err != nil {
		return err
	}
	defer d.proc.stop()
	if cfg.want("agent") {
		if err := idleKKAgent(ctx, cfg, d, dir, r); err != nil {
			return fmt.Errorf("kkagent: %w", err)
		}
	}
	if !cfg.want("idle") {
		return nil
	}
	before, err := readProcStat(d.proc.pid())
	if err != nil {
		return err
	}
	f, err := startFleet(ctx, logger, d, cfg.idleAgents, 30)
	if err != nil {
		return err
	}
	defer f.stop()
	// Every agent holds its first poll; then settle before the window.
	for f.polls.Load() < int64(cfg.idleAgents) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	time.Sleep(5 * time.Second) // settle: a measurement window, not synchronisation
	s0, err := readProcStat(d.proc.pid())
	if err != nil {
		return err
	}
	req0, t0 := f.requests.Load(), time.Now()
	time.Sleep(cfg.idleWindow) // the measurement window
	s1, err := readProcStat(d.proc.pid())
	if err != nil {
		return err
	}
	req1, wall := f.requests.Load(), time.Since(t0)
	n := float64(cfg.idleAgents)
	r.add(figure{name: "kkd_rss_1000_agents_mib", value: float64(s1.rss) / (1 << 20), unit: "MiB", target: "<= 150", ok: atMost(150),
		how: fmt.Sprintf("VmRSS of kkd (SQLite) with %d idle agents holding work polls (%.1f MiB before they connected)", cfg.idleAgents, float64(before.rss)/(1<<20))})
	r.add(figure{name: "kkd_cpu_1000_agents_pct", value: 100 * (s1.cpu - s0.cpu).Seconds() / wall.Seconds(), unit: "%", target: "<= 5", ok: atMost(5),
		how: fmt.Sprintf("kkd utime+stime over %s / wall time, %% of one core", wall.Round(time.Second))})
	r.add(figure{name: "idle_agent_req_per_s", value: float64(req1-req0) / n / wall.Seconds(), unit: "req/s", target: "<= 0.05", ok: atMost(0.05),
		how: fmt.Sprintf("requests sent by %d simulated agents (work poll wait=30 as kkagent) over %s, per agent", cfg.idleAgents, wall.Round(time.Second))})
	return nil
}

// idleKKAgent starts a real kkagent (supervisor and worker) that registers
// with the key, waits until kkd shows it idle, then 5 s, and reads its RSS.
func idleKKAgent(ctx context.Context, cfg config, d *daemon, dir string, r *report) error {
	p, err := startProcess(filepath.Join(cfg.binDir, "kkagent"), filepath.Join(dir, "kkagent.log"), nil,
		"run", "-s", d.url, "--data-dir", filepath.Join(dir, "agent"), "--registration-key", registrationKey,
		"--name", "real-agent", "--self-upgrade=false")
	if err != nil {
		return err
	}
	defer p.stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		as, err := d.admin.ListAgents(ctx, false)
		if err != nil {
			return fmt.Errorf("list agents: %w", err)
		}
		if slices.ContainsFunc(as, func(a apiAgent) bool { return a.Name == "real-agent" && a.State == "idle" }) {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(p.log)
			return fmt.Errorf("kkagent not idle within 30s: %s", tail(b))
		}
		time.Sleep(100 * time.Millisecond) // polling with a deadline
	}
	time.Sleep(5 * time.Second) // idle for a while: a measurement window
	sup, err := readProcStat(p.pid())
	if err != nil {
		return err
	}
	kids := childPIDs(p.pid())
	if len(kids) != 1 {
		return fmt.Errorf("kkagent supervisor has %d children, want its worker", len(kids))
	}
	worker, err := readProcStat(kids[0])
	if err != nil {
		return err
	}
	supPSS, err := readPSS(p.pid())
	if err != nil {
		return err
	}
	workerPSS, err := readPSS(kids[0])
	if err != nil {
		return err
	}
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	r.add(figure{name: "agent_idle_rss_mib", value: mib(sup.rss + worker.rss), unit: "MiB", target: "<= 12", ok: atMost(12),
		how: fmt.Sprintf("VmRSS of an idle `kkagent run`: supervisor %.1f + worker %.1f MiB", mib(sup.rss), mib(worker.rss))})
	r.add(figure{name: "agent_idle_worker_rss_mib", value: mib(worker.rss), unit: "MiB", target: "<= 12", ok: atMost(12),
		how: "VmRSS of the worker alone (what `kkagent run --no-supervisor` runs)"})
	r.add(figure{name: "agent_idle_pss_mib", value: mib(supPSS + workerPSS), unit: "MiB", target: "<= 12", ok: atMost(12),
		how: fmt.Sprintf("Pss of supervisor %.1f + worker %.1f MiB: the binary's pages both map count once", mib(supPSS), mib(workerPSS))})
	return nil
}
