package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// resultCols reads a test result with its job and flow (aliases tr, tc, j, f;
// ja is the LEFT JOINed job_analysis row).
const resultCols = `tr.id, tr.job_id, j.name, j.run_id, tr.flow_id, f.kind, j.agents_group, j.system, tc.name,
	tr.status, tr.message, tr.cmd, tr.duration, tr.vals, tr.change, tr.instability, tr.age, tr.relevancy,
	ja.job_id IS NOT NULL, tr.created`

const resultFrom = ` FROM test_results tr
	JOIN test_cases tc ON tc.id = tr.test_case_id
	JOIN jobs j ON j.id = tr.job_id
	JOIN flows f ON f.id = tr.flow_id
	LEFT JOIN job_analysis ja ON ja.job_id = tr.job_id`

func scanResult(sc scanner) (ci.TestResult, error) {
	var r ci.TestResult
	var vals string
	var created int64
	if err := sc.Scan(&r.ID, &r.JobID, &r.JobName, &r.RunID, &r.FlowID, &r.FlowKind, &r.Group, &r.System, &r.Name,
		&r.Status, &r.Message, &r.Cmd, &r.Duration, &vals, &r.Change, &r.Instability, &r.Age, &r.Relevancy,
		&r.Analyzed, &created); err != nil {
		return ci.TestResult{}, err
	}
	m, err := decodeMap[ci.TestValue](vals)
	if err != nil {
		return ci.TestResult{}, fmt.Errorf("values of test result %d: %w", r.ID, err)
	}
	r.Values = m
	r.Created = fromMS(created)
	return r, nil
}

const issueCols = `i.id, i.job_id, j.name, i.path, i.line, i.col, i.type, i.symbol, i.message, i.age, ja.job_id IS NOT NULL`

const issueFrom = ` FROM issues i
	JOIN jobs j ON j.id = i.job_id
	LEFT JOIN job_analysis ja ON ja.job_id = i.job_id`

func scanIssue(sc scanner) (ci.Issue, error) {
	var i ci.Issue
	err := sc.Scan(&i.ID, &i.JobID, &i.JobName, &i.Path, &i.Line, &i.Column, &i.Type, &i.Symbol, &i.Message, &i.Age, &i.Analyzed)
	return i, err
}

// checkBatch validates a batch before any transaction starts.
func checkBatch(tests []ci.TestResult, issues []ci.Issue) ([]string, error) {
	vals := make([]string, len(tests))
	for i, t := range tests {
		if t.Name == "" {
			return nil, fmt.Errorf("test %d has no name: %w", i, ci.ErrInvalid)
		}
		if !t.Status.Valid() {
			return nil, fmt.Errorf("test %q: unknown status %q: %w", t.Name, t.Status, ci.ErrInvalid)
		}
		v, err := encodeMap(t.Values)
		if err != nil {
			return nil, fmt.Errorf("test %q values: %w", t.Name, err)
		}
		vals[i] = v
	}
	for i, is := range issues {
		if is.Path == "" || is.Type == "" {
			return nil, fmt.Errorf("issue %d needs a path and a type: %w", i, ci.ErrInvalid)
		}
	}
	return vals, nil
}

// PutResults stores a batch of test results and issues of the job's attempt.
func (s *Store) PutResults(ctx context.Context, jobID int64, attempt, step int, tests []ci.TestResult, issues []ci.Issue) error {
	vals, err := checkBatch(tests, issues)
	if err != nil {
		return fmt.Errorf("put results of job %d: %w", jobID, err)
	}
	now := ms(s.now())
	err = s.write(ctx, func(tx *sql.Tx) error {
		h, err := getJobHead(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if err := fence(jobID, h, attempt); err != nil {
			return err
		}
		var branchID int64
		if err := tx.QueryRowContext(ctx, `SELECT branch_id FROM flows WHERE id = ?`, h.flowID).Scan(&branchID); err != nil {
			return notFound(err, "flow", h.flowID)
		}
		if attempt > 0 {
			// What an earlier attempt stored is not this attempt's result.
			for _, q := range []string{`DELETE FROM test_results WHERE job_id = ? AND attempt < ?`, `DELETE FROM issues WHERE job_id = ? AND attempt < ?`} {
				if _, err := tx.ExecContext(ctx, q, jobID, attempt); err != nil {
					return err
				}
			}
		}
		for i, t := range tests {
			var caseID int64
			err := tx.QueryRowContext(ctx, `
				INSERT INTO test_cases (branch_id, name) VALUES (?, ?)
				ON CONFLICT (branch_id, name) DO UPDATE SET name = excluded.name
				RETURNING id`, branchID, t.Name).Scan(&caseID)
			if err != nil {
				return fmt.Errorf("test case %q: %w", t.Name, err)
			}
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO test_results (job_id, test_case_id, flow_id, attempt, step, status, message, cmd, duration, vals, created)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (job_id, test_case_id) DO UPDATE SET attempt = excluded.attempt, step = excluded.step,
					status = excluded.status, message = excluded.message, cmd = excluded.cmd,
					duration = excluded.duration, vals = excluded.vals`,
				jobID, caseID, h.flowID, attempt, step, t.Status, t.Message, t.Cmd, t.Duration, vals[i], now); err != nil {
				return fmt.Errorf("test %q: %w", t.Name, err)
			}
		}
		for _, is := range issues {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO issues (job_id, attempt, path, line, col, type, symbol, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (job_id, path, line, col, type, symbol, message) DO UPDATE SET attempt = excluded.attempt`,
				jobID, attempt, is.Path, is.Line, is.Column, is.Type, is.Symbol, is.Message); err != nil {
				return fmt.Errorf("issue %s:%d: %w", is.Path, is.Line, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put results of job %d: %w", jobID, err)
	}
	return nil
}

// ListJobResults returns the job's results ordered by name.
func (s *Store) ListJobResults(ctx context.Context, jobID int64) ([]ci.TestResult, error) {
	out, err := queryAll(ctx, s.r, scanResult, `SELECT `+resultCols+resultFrom+` WHERE tr.job_id = ? ORDER BY tc.name`, jobID)
	if err != nil {
		return nil, fmt.Errorf("list results of job %d: %w", jobID, err)
	}
	return out, nil
}

// ListJobIssues returns the job's issues.
func (s *Store) ListJobIssues(ctx context.Context, jobID int64) ([]ci.Issue, error) {
	out, err := queryAll(ctx, s.r, scanIssue, `SELECT `+issueCols+issueFrom+` WHERE i.job_id = ? ORDER BY i.path, i.line, i.col, i.id`, jobID)
	if err != nil {
		return nil, fmt.Errorf("list issues of job %d: %w", jobID, err)
	}
	return out, nil
}

// statusRank orders statuses most severe first.
const statusRank = `CASE tr.status WHEN 'failed' THEN 0 WHEN 'error' THEN 1 WHEN 'unstable' THEN 2
	WHEN 'not-run' THEN 3 WHEN 'disabled' THEN 4 ELSE 5 END`

// ListRunResults returns the filtered results of the run's non-covered jobs.
func (s *Store) ListRunResults(ctx context.Context, runID int64, f store.ResultFilter) ([]ci.TestResult, error) {
	where := ` WHERE j.run_id = ? AND j.covered = 0`
	args := []any{runID}
	if f.Status != "" {
		where += ` AND tr.status = ?`
		args = append(args, f.Status)
	}
	if f.Change != "" {
		where += ` AND tr.change = ?`
		args = append(args, f.Change)
	}
	if f.MinInstability > 0 {
		where += ` AND tr.instability >= ?`
		args = append(args, f.MinInstability)
	}
	if f.JobID > 0 {
		where += ` AND j.id = ?`
		args = append(args, f.JobID)
	}
	if f.JobName != "" {
		where += ` AND j.name = ?`
		args = append(args, f.JobName)
	}
	var order string
	switch f.Sort {
	case "", "relevancy":
		order = ` ORDER BY tr.relevancy DESC, tc.name, j.id`
	case "name":
		order = ` ORDER BY tc.name, j.id`
	case "status":
		order = ` ORDER BY ` + statusRank + `, tc.name, j.id`
	default:
		return nil, fmt.Errorf("list results of run %d: sort %q: use relevancy, name or status: %w", runID, f.Sort, ci.ErrInvalid)
	}
	all, err := queryAll(ctx, s.r, scanResult, `SELECT `+resultCols+resultFrom+where+order, args...)
	if err != nil {
		return nil, fmt.Errorf("list results of run %d: %w", runID, err)
	}
	if f.Name == "" {
		return all, nil
	}
	out := all[:0]
	for _, r := range all {
		if store.MatchGlob(f.Name, r.Name) {
			out = append(out, r)
		}
	}
	return out, nil
}

// ListRunIssues returns the filtered issues of the run's non-covered jobs.
func (s *Store) ListRunIssues(ctx context.Context, runID int64, f store.IssueFilter) ([]ci.Issue, error) {
	where := ` WHERE j.run_id = ? AND j.covered = 0`
	args := []any{runID}
	if f.NewOnly {
		where += ` AND ja.job_id IS NOT NULL AND i.age = 0`
	}
	if f.JobID > 0 {
		where += ` AND j.id = ?`
		args = append(args, f.JobID)
	}
	if f.JobName != "" {
		where += ` AND j.name = ?`
		args = append(args, f.JobName)
	}
	out, err := queryAll(ctx, s.r, scanIssue, `SELECT `+issueCols+issueFrom+where+` ORDER BY j.id, i.path, i.line, i.col, i.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list issues of run %d: %w", runID, err)
	}
	return out, nil
}

// RunResultCounts sums up the run's results.
func (s *Store) RunResultCounts(ctx context.Context, runID int64) (ci.RunResultCounts, error) {
	var c ci.RunResultCounts
	err := s.read(ctx, func(tx *sql.Tx) error {
		if _, err := getRun(ctx, tx, runID); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `
			SELECT count(*), coalesce(sum(tr.status = 'passed'), 0), coalesce(sum(tr.status = 'not-run'), 0),
				coalesce(sum(tr.change = 'new'), 0), coalesce(sum(tr.change = 'no-change'), 0),
				coalesce(sum(tr.change = 'regr'), 0), coalesce(sum(tr.change = 'fix'), 0)
			FROM test_results tr JOIN jobs j ON j.id = tr.job_id
			WHERE j.run_id = ? AND j.covered = 0`, runID).
			Scan(&c.TestsTotal, &c.TestsPassed, &c.TestsNotRun, &c.New, &c.NoChange, &c.Regr, &c.Fix)
		if err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, `
			SELECT count(*), coalesce(sum(ja.job_id IS NOT NULL AND i.age = 0), 0)
			FROM issues i JOIN jobs j ON j.id = i.job_id LEFT JOIN job_analysis ja ON ja.job_id = i.job_id
			WHERE j.run_id = ? AND j.covered = 0`, runID).Scan(&c.IssuesTotal, &c.IssuesNew)
		if err != nil {
			return err
		}
		pending, err := exists(ctx, tx, `
			SELECT 1 FROM jobs j LEFT JOIN job_analysis ja ON ja.job_id = j.id
			WHERE j.run_id = ? AND j.covered = 0 AND (j.state <> 'completed' OR ja.job_id IS NULL)`, runID)
		c.Analyzed = !pending
		return err
	})
	if err != nil {
		return c, fmt.Errorf("count results of run %d: %w", runID, err)
	}
	return c, nil
}

// TestHistory returns the named test's results in the branch, newest first.
func (s *Store) TestHistory(ctx context.Context, branchID int64, name string, kind ci.FlowKind, limit int) ([]ci.TestResult, error) {
	var out []ci.TestResult
	err := s.read(ctx, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM branches WHERE id = ?`, branchID); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("branch %d: %w", branchID, ci.ErrNotFound)
		}
		q := `SELECT ` + resultCols + resultFrom + ` WHERE tc.branch_id = ? AND tc.name = ? AND j.covered = 0`
		args := []any{branchID, name}
		if kind != "" {
			q += ` AND f.kind = ?`
			args = append(args, kind)
		}
		q += ` ORDER BY tr.flow_id DESC, tr.job_id DESC LIMIT ?`
		args = append(args, sqlLimit(limit))
		var err error
		out, err = queryAll(ctx, tx, scanResult, q, args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("history of test %q in branch %d: %w", name, branchID, err)
	}
	return out, nil
}

// jobEnv is what the history queries need of a job.
type jobEnv struct {
	id, flowID, branchID int64
	name, group, system  string
	stage                string
	kind                 ci.FlowKind
}

func getJobEnv(ctx context.Context, q querier, jobID int64) (jobEnv, error) {
	var e jobEnv
	err := q.QueryRowContext(ctx, `
		SELECT j.id, j.flow_id, f.branch_id, j.name, j.agents_group, j.system, r.stage_name, f.kind
		FROM jobs j JOIN runs r ON r.id = j.run_id JOIN flows f ON f.id = j.flow_id WHERE j.id = ?`, jobID).
		Scan(&e.id, &e.flowID, &e.branchID, &e.name, &e.group, &e.system, &e.stage, &e.kind)
	if err != nil {
		return e, notFound(err, "job", jobID)
	}
	return e, nil
}

// historyQuery selects analysed results of one test case in CI flows of
// non-covered jobs of the same group and system, newest flow first; the
// test_results_history index gives them in order.
const historyQuery = `SELECT ` + resultCols + ` FROM test_results tr
	JOIN test_cases tc ON tc.id = tr.test_case_id
	JOIN jobs j ON j.id = tr.job_id
	JOIN flows f ON f.id = tr.flow_id
	JOIN job_analysis ja ON ja.job_id = tr.job_id
	WHERE tr.test_case_id = ? AND tr.flow_id < ? AND f.kind = 'ci' AND j.covered = 0
		AND j.agents_group = ? AND j.system = ? AND j.state = 'completed'
	ORDER BY tr.flow_id DESC, tr.job_id DESC LIMIT ?`

// history runs historyQuery for every test of the job in one snapshot.
func (s *Store) history(ctx context.Context, jobID int64, before func(jobEnv) int64, limit int, what string) (map[string][]ci.TestResult, error) {
	out := map[string][]ci.TestResult{}
	err := s.read(ctx, func(tx *sql.Tx) error {
		e, err := getJobEnv(ctx, tx, jobID)
		if err != nil {
			return err
		}
		type tcase struct {
			id   int64
			name string
		}
		cases, err := queryAll(ctx, tx, func(sc scanner) (tcase, error) {
			var c tcase
			return c, sc.Scan(&c.id, &c.name)
		}, `SELECT tc.id, tc.name FROM test_results tr JOIN test_cases tc ON tc.id = tr.test_case_id WHERE tr.job_id = ?`, jobID)
		if err != nil {
			return err
		}
		for _, c := range cases {
			rs, err := queryAll(ctx, tx, scanResult, historyQuery, c.id, before(e), e.group, e.system, limit)
			if err != nil {
				return fmt.Errorf("test %q: %w", c.name, err)
			}
			if len(rs) > 0 {
				out[c.name] = rs
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s of job %d: %w", what, jobID, err)
	}
	return out, nil
}

// CIHistory returns the previous CI results of each test of the job.
func (s *Store) CIHistory(ctx context.Context, jobID int64, limit int) (map[string][]ci.TestResult, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("ci history of job %d: limit %d: give a positive limit: %w", jobID, limit, ci.ErrInvalid)
	}
	return s.history(ctx, jobID, func(e jobEnv) int64 { return e.flowID }, limit, "ci history")
}

// CIBaseline returns the latest analysed CI result of each test of the job.
func (s *Store) CIBaseline(ctx context.Context, jobID int64) (map[string]ci.TestResult, error) {
	h, err := s.history(ctx, jobID, func(jobEnv) int64 { return 1<<63 - 1 }, 1, "ci baseline")
	if err != nil {
		return nil, err
	}
	out := make(map[string]ci.TestResult, len(h))
	for name, rs := range h {
		out[name] = rs[0]
	}
	return out, nil
}

// PreviousIssues returns the issues of the previous successful CI job.
func (s *Store) PreviousIssues(ctx context.Context, jobID int64) ([]ci.Issue, bool, error) {
	var out []ci.Issue
	found := false
	err := s.read(ctx, func(tx *sql.Tx) error {
		e, err := getJobEnv(ctx, tx, jobID)
		if err != nil {
			return err
		}
		var prev int64
		err = tx.QueryRowContext(ctx, `
			SELECT j.id FROM jobs j
			JOIN runs r ON r.id = j.run_id
			JOIN flows f ON f.id = j.flow_id
			JOIN job_analysis ja ON ja.job_id = j.id
			WHERE j.name = ? AND j.agents_group = ? AND j.system = ? AND j.flow_id < ?
				AND r.stage_name = ? AND f.branch_id = ? AND f.kind = 'ci'
				AND j.state = 'completed' AND j.result = 'ok' AND j.covered = 0
			ORDER BY j.flow_id DESC, j.id DESC LIMIT 1`,
			e.name, e.group, e.system, e.flowID, e.stage, e.branchID).Scan(&prev)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		out, err = queryAll(ctx, tx, scanIssue, `SELECT `+issueCols+issueFrom+` WHERE i.job_id = ? ORDER BY i.path, i.line, i.id`, prev)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("previous issues of job %d: %w", jobID, err)
	}
	return out, found, nil
}

// SaveAnalysis stores the job's analysis and marks it analysed.
func (s *Store) SaveAnalysis(ctx context.Context, jobID int64, results []store.ResultAnalysis, issues []store.IssueAnalysis, at time.Time) error {
	for _, r := range results {
		if !r.Change.Valid() {
			return fmt.Errorf("save analysis of job %d: result %d: change %q: %w", jobID, r.ID, r.Change, ci.ErrInvalid)
		}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := getJobHead(ctx, tx, jobID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO job_analysis (job_id, analyzed) VALUES (?, ?) ON CONFLICT (job_id) DO NOTHING`, jobID, ms(at))
		if err != nil {
			return err
		}
		if ok, err := affected(res); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("job %d is analysed already: %w", jobID, ci.ErrConflict)
		}
		for _, r := range results {
			res, err := tx.ExecContext(ctx, `
				UPDATE test_results SET change = ?, instability = ?, age = ?, relevancy = ? WHERE id = ? AND job_id = ?`,
				r.Change, r.Instability, r.Age, r.Relevancy, r.ID, jobID)
			if err != nil {
				return err
			}
			if err := mustAffect(res, "test result", r.ID); err != nil {
				return err
			}
		}
		for _, i := range issues {
			res, err := tx.ExecContext(ctx, `UPDATE issues SET age = ? WHERE id = ? AND job_id = ?`, i.Age, i.ID, jobID)
			if err != nil {
				return err
			}
			if err := mustAffect(res, "issue", i.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save analysis of job %d: %w", jobID, err)
	}
	return nil
}

// PendingAnalysis returns the run's completed, non-covered, unanalysed jobs.
func (s *Store) PendingAnalysis(ctx context.Context, runID int64) ([]ci.Job, error) {
	out, err := queryAll(ctx, s.r, scanJob, `SELECT `+prefixed("j.", jobCols)+` FROM jobs j
		LEFT JOIN job_analysis ja ON ja.job_id = j.id
		WHERE j.run_id = ? AND j.covered = 0 AND j.state = 'completed' AND ja.job_id IS NULL ORDER BY j.id`, runID)
	if err != nil {
		return nil, fmt.Errorf("pending analysis of run %d: %w", runID, err)
	}
	return out, nil
}

// AdjacentCIRun returns the run of the same stage in the previous or next CI flow.
func (s *Store) AdjacentCIRun(ctx context.Context, runID int64, next bool) (store.RunRef, bool, error) {
	var ref store.RunRef
	found := false
	err := s.read(ctx, func(tx *sql.Tx) error {
		var branchID, flowID int64
		var stage string
		err := tx.QueryRowContext(ctx, `SELECT f.branch_id, r.flow_id, r.stage_name FROM runs r JOIN flows f ON f.id = r.flow_id WHERE r.id = ?`, runID).
			Scan(&branchID, &flowID, &stage)
		if err != nil {
			return notFound(err, "run", runID)
		}
		q := `SELECT r.id, r.flow_id, r.state FROM runs r JOIN flows f ON f.id = r.flow_id
			WHERE r.stage_name = ? AND f.branch_id = ? AND f.kind = 'ci' AND r.state <> 'manual' AND r.flow_id < ?
			ORDER BY r.flow_id DESC, r.id DESC LIMIT 1`
		if next {
			q = `SELECT r.id, r.flow_id, r.state FROM runs r JOIN flows f ON f.id = r.flow_id
			WHERE r.stage_name = ? AND f.branch_id = ? AND f.kind = 'ci' AND r.state <> 'manual' AND r.flow_id > ?
			ORDER BY r.flow_id, r.id LIMIT 1`
		}
		err = tx.QueryRowContext(ctx, q, stage, branchID, flowID).Scan(&ref.RunID, &ref.FlowID, &ref.State)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		if ref.State != ci.RunCompleted {
			return nil
		}
		pending, err := exists(ctx, tx, `SELECT 1 FROM jobs j LEFT JOIN job_analysis ja ON ja.job_id = j.id
			WHERE j.run_id = ? AND j.covered = 0 AND ja.job_id IS NULL`, ref.RunID)
		ref.Processed = !pending
		return err
	})
	if err != nil {
		return ref, false, fmt.Errorf("adjacent ci run of run %d: %w", runID, err)
	}
	return ref, found, nil
}

// ListRunsToAnalyze returns completed runs with unanalysed jobs.
func (s *Store) ListRunsToAnalyze(ctx context.Context) ([]int64, error) {
	out, err := queryAll(ctx, s.r, func(sc scanner) (int64, error) {
		var id int64
		return id, sc.Scan(&id)
	}, `SELECT r.id FROM runs r WHERE r.state = 'completed' AND EXISTS (
			SELECT 1 FROM jobs j LEFT JOIN job_analysis ja ON ja.job_id = j.id
			WHERE j.run_id = r.id AND j.covered = 0 AND j.state = 'completed' AND ja.job_id IS NULL)
		ORDER BY r.flow_id, r.id`)
	if err != nil {
		return nil, fmt.Errorf("list runs to analyse: %w", err)
	}
	return out, nil
}

// prefixed qualifies a comma-separated column list with a table alias.
func prefixed(alias, cols string) string {
	var out []byte
	start := true
	for i := 0; i < len(cols); i++ {
		c := cols[i]
		if start && c != ' ' && c != '\t' && c != '\n' {
			out = append(out, alias...)
			start = false
		}
		out = append(out, c)
		if c == ',' {
			start = true
		}
	}
	return string(out)
}
