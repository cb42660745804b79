package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// resultCols reads a test result with its job and flow (aliases tr, tc, j, f;
// ja is the LEFT JOINed job_analysis row). Every output column has its own
// name, so the history query can select them from a LATERAL subquery.
const resultCols = `tr.id, tr.job_id, j.name AS job_name, j.run_id, tr.flow_id, f.kind, j.agents_group, j.system,
	tc.name AS test_name, tr.status, tr.message, tr.cmd, tr.duration, tr.vals, tr.change, tr.instability, tr.age,
	tr.relevancy, ja.job_id IS NOT NULL AS analyzed, tr.created`

const resultFrom = ` FROM test_results tr
	JOIN test_cases tc ON tc.id = tr.test_case_id
	JOIN jobs j ON j.id = tr.job_id
	JOIN flows f ON f.id = tr.flow_id
	LEFT JOIN job_analysis ja ON ja.job_id = tr.job_id`

func scanResult(sc pgx.Row) (ci.TestResult, error) {
	var r ci.TestResult
	var vals string
	if err := sc.Scan(&r.ID, &r.JobID, &r.JobName, &r.RunID, &r.FlowID, &r.FlowKind, &r.Group, &r.System, &r.Name,
		&r.Status, &r.Message, &r.Cmd, &r.Duration, &vals, &r.Change, &r.Instability, &r.Age, &r.Relevancy,
		&r.Analyzed, &r.Created); err != nil {
		return ci.TestResult{}, err
	}
	m, err := decodeMap[ci.TestValue](vals)
	if err != nil {
		return ci.TestResult{}, fmt.Errorf("values of test result %d: %w", r.ID, err)
	}
	r.Values = m
	return r, nil
}

const issueCols = `i.id, i.job_id, j.name, i.path, i.line, i.col, i.type, i.symbol, i.message, i.age, ja.job_id IS NOT NULL`

const issueFrom = ` FROM issues i
	JOIN jobs j ON j.id = i.job_id
	LEFT JOIN job_analysis ja ON ja.job_id = i.job_id`

func scanIssue(sc pgx.Row) (ci.Issue, error) {
	var i ci.Issue
	err := sc.Scan(&i.ID, &i.JobID, &i.JobName, &i.Path, &i.Line, &i.Column, &i.Type, &i.Symbol, &i.Message, &i.Age, &i.Analyzed)
	return i, err
}

// resultBatch is a batch of PutResults as column arrays for unnest: one
// entry per test name (the last result of a name in the batch wins, as if
// they were stored one after the other) and per distinct issue.
type resultBatch struct {
	names, statuses, messages, cmds, vals []string
	durations                             []float64

	paths, types, symbols, issueMsgs []string
	lines, cols                      []int32
}

// prepareBatch validates a batch and lays it out, before any transaction
// starts. Tests are sorted by name, so that concurrent batches create test
// cases and results in one order.
func prepareBatch(tests []ci.TestResult, issues []ci.Issue) (resultBatch, error) {
	var b resultBatch
	last := map[string]int{}
	for i, t := range tests {
		if t.Name == "" {
			return b, fmt.Errorf("test %d has no name: %w", i, ci.ErrInvalid)
		}
		if !t.Status.Valid() {
			return b, fmt.Errorf("test %q: unknown status %q: %w", t.Name, t.Status, ci.ErrInvalid)
		}
		last[t.Name] = i
	}
	idx := make([]int, 0, len(last))
	for _, i := range last {
		idx = append(idx, i)
	}
	slices.SortFunc(idx, func(a, c int) int { return cmp.Compare(tests[a].Name, tests[c].Name) })
	for _, i := range idx {
		t := tests[i]
		v, err := encodeMap(t.Values)
		if err != nil {
			return b, fmt.Errorf("test %q values: %w", t.Name, err)
		}
		b.names = append(b.names, t.Name)
		b.statuses = append(b.statuses, string(t.Status))
		b.messages = append(b.messages, t.Message)
		b.cmds = append(b.cmds, t.Cmd)
		b.durations = append(b.durations, t.Duration)
		b.vals = append(b.vals, v)
	}
	type issueKey struct {
		path, typ, symbol, message string
		line, col                  int
	}
	seen := map[issueKey]bool{}
	for i, is := range issues {
		if is.Path == "" || is.Type == "" {
			return b, fmt.Errorf("issue %d needs a path and a type: %w", i, ci.ErrInvalid)
		}
		if is.Line < 0 || is.Line > 1<<31-1 || is.Column < 0 || is.Column > 1<<31-1 {
			return b, fmt.Errorf("issue %d (%s): line %d, column %d out of range: %w", i, is.Path, is.Line, is.Column, ci.ErrInvalid)
		}
		k := issueKey{is.Path, is.Type, is.Symbol, is.Message, is.Line, is.Column}
		if seen[k] {
			continue
		}
		seen[k] = true
		b.paths = append(b.paths, is.Path)
		b.types = append(b.types, is.Type)
		b.symbols = append(b.symbols, is.Symbol)
		b.issueMsgs = append(b.issueMsgs, is.Message)
		b.lines = append(b.lines, int32(is.Line))
		b.cols = append(b.cols, int32(is.Column))
	}
	return b, nil
}

// PutResults stores a batch of test results and issues of the job's attempt,
// fenced with the job row share-locked (as UpdateStep's writes are). Test
// cases, results and issues go in with one statement each.
func (s *Store) PutResults(ctx context.Context, jobID int64, attempt, step int, tests []ci.TestResult, issues []ci.Issue) error {
	b, err := prepareBatch(tests, issues)
	if err != nil {
		return fmt.Errorf("put results of job %d: %w", jobID, err)
	}
	now := s.now()
	err = s.write(ctx, func(tx querier) error {
		h, err := getJobHead(ctx, tx, jobID, shareJob)
		if err != nil {
			return err
		}
		if err := fence(jobID, h, attempt); err != nil {
			return err
		}
		var branchID int64
		if err := tx.QueryRow(ctx, `SELECT branch_id FROM flows WHERE id = $1`, h.flowID).Scan(&branchID); err != nil {
			return notFound(err, "flow", h.flowID)
		}
		if attempt > 0 {
			// What an earlier attempt stored is not this attempt's result.
			for _, q := range []string{`DELETE FROM test_results WHERE job_id = $1 AND attempt < $2`, `DELETE FROM issues WHERE job_id = $1 AND attempt < $2`} {
				if _, err := tx.Exec(ctx, q, jobID, attempt); err != nil {
					return err
				}
			}
		}
		if len(b.names) > 0 {
			if _, err := tx.Exec(ctx, `
				INSERT INTO test_cases (branch_id, name)
				SELECT $1, n FROM unnest($2::text[]) AS n ORDER BY n COLLATE "C"
				ON CONFLICT (branch_id, name) DO NOTHING`, branchID, b.names); err != nil {
				return fmt.Errorf("test cases: %w", err)
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO test_results (job_id, test_case_id, flow_id, attempt, step, status, message, cmd, duration, vals, created)
				SELECT $1, tc.id, $2, $3, $4, t.status, t.message, t.cmd, t.duration, t.vals::jsonb, $5
				FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::float8[], $11::text[])
					AS t (name, status, message, cmd, duration, vals)
				JOIN test_cases tc ON tc.branch_id = $12 AND tc.name = t.name
				ORDER BY tc.id
				ON CONFLICT (job_id, test_case_id) DO UPDATE SET attempt = excluded.attempt, step = excluded.step,
					status = excluded.status, message = excluded.message, cmd = excluded.cmd,
					duration = excluded.duration, vals = excluded.vals`,
				jobID, h.flowID, attempt, step, now,
				b.names, b.statuses, b.messages, b.cmds, b.durations, b.vals, branchID); err != nil {
				return fmt.Errorf("test results: %w", err)
			}
		}
		if len(b.paths) > 0 {
			if _, err := tx.Exec(ctx, `
				INSERT INTO issues (job_id, attempt, path, line, col, type, symbol, message)
				SELECT $1, $2, i.path, i.line, i.col, i.type, i.symbol, i.message
				FROM unnest($3::text[], $4::int[], $5::int[], $6::text[], $7::text[], $8::text[])
					AS i (path, line, col, type, symbol, message)
				ON CONFLICT (job_id, line, col, type, md5(path), md5(symbol), md5(message))
				DO UPDATE SET attempt = excluded.attempt`,
				jobID, attempt, b.paths, b.lines, b.cols, b.types, b.symbols, b.issueMsgs); err != nil {
				return fmt.Errorf("issues: %w", err)
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
	out, err := queryAll(ctx, s, s.q(), scanResult, `SELECT `+resultCols+resultFrom+` WHERE tr.job_id = $1 ORDER BY tc.name`, jobID)
	if err != nil {
		return nil, fmt.Errorf("list results of job %d: %w", jobID, err)
	}
	return out, nil
}

// ListJobIssues returns the job's issues.
func (s *Store) ListJobIssues(ctx context.Context, jobID int64) ([]ci.Issue, error) {
	out, err := queryAll(ctx, s, s.q(), scanIssue, `SELECT `+issueCols+issueFrom+` WHERE i.job_id = $1 ORDER BY i.path, i.line, i.col, i.id`, jobID)
	if err != nil {
		return nil, fmt.Errorf("list issues of job %d: %w", jobID, err)
	}
	return out, nil
}

// statusRank orders statuses most severe first.
const statusRank = `CASE tr.status WHEN 'failed' THEN 0 WHEN 'error' THEN 1 WHEN 'unstable' THEN 2
	WHEN 'not-run' THEN 3 WHEN 'disabled' THEN 4 ELSE 5 END`

// params numbers the arguments of a query built piece by piece.
type params struct{ args []any }

// add appends v and returns its placeholder.
func (p *params) add(v any) string {
	p.args = append(p.args, v)
	return "$" + strconv.Itoa(len(p.args))
}

// ListRunResults returns the filtered results of the run's non-covered jobs.
// The name glob is matched by store.MatchGlob, as on SQLite.
func (s *Store) ListRunResults(ctx context.Context, runID int64, f store.ResultFilter) ([]ci.TestResult, error) {
	var p params
	where := ` WHERE j.run_id = ` + p.add(runID) + ` AND NOT j.covered`
	if f.Status != "" {
		where += ` AND tr.status = ` + p.add(string(f.Status))
	}
	if f.Change != "" {
		where += ` AND tr.change = ` + p.add(string(f.Change))
	}
	if f.MinInstability > 0 {
		where += ` AND tr.instability >= ` + p.add(f.MinInstability)
	}
	if f.JobID > 0 {
		where += ` AND j.id = ` + p.add(f.JobID)
	}
	if f.JobName != "" {
		where += ` AND j.name = ` + p.add(f.JobName)
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
	all, err := queryAll(ctx, s, s.q(), scanResult, `SELECT `+resultCols+resultFrom+where+order, p.args...)
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
	var p params
	where := ` WHERE j.run_id = ` + p.add(runID) + ` AND NOT j.covered`
	if f.NewOnly {
		where += ` AND ja.job_id IS NOT NULL AND i.age = 0`
	}
	if f.JobID > 0 {
		where += ` AND j.id = ` + p.add(f.JobID)
	}
	if f.JobName != "" {
		where += ` AND j.name = ` + p.add(f.JobName)
	}
	out, err := queryAll(ctx, s, s.q(), scanIssue, `SELECT `+issueCols+issueFrom+where+` ORDER BY j.id, i.path, i.line, i.col, i.id`, p.args...)
	if err != nil {
		return nil, fmt.Errorf("list issues of run %d: %w", runID, err)
	}
	return out, nil
}

// RunResultCounts sums up the run's results in one snapshot.
func (s *Store) RunResultCounts(ctx context.Context, runID int64) (ci.RunResultCounts, error) {
	var c ci.RunResultCounts
	err := s.read(ctx, func(tx querier) error {
		c = ci.RunResultCounts{}
		if _, err := getRun(ctx, tx, runID, ""); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `
			SELECT count(*), count(*) FILTER (WHERE tr.status = 'passed'), count(*) FILTER (WHERE tr.status = 'not-run'),
				count(*) FILTER (WHERE tr.change = 'new'), count(*) FILTER (WHERE tr.change = 'no-change'),
				count(*) FILTER (WHERE tr.change = 'regr'), count(*) FILTER (WHERE tr.change = 'fix')
			FROM test_results tr JOIN jobs j ON j.id = tr.job_id
			WHERE j.run_id = $1 AND NOT j.covered`, runID).
			Scan(&c.TestsTotal, &c.TestsPassed, &c.TestsNotRun, &c.New, &c.NoChange, &c.Regr, &c.Fix)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `
			SELECT count(*), count(*) FILTER (WHERE ja.job_id IS NOT NULL AND i.age = 0)
			FROM issues i JOIN jobs j ON j.id = i.job_id LEFT JOIN job_analysis ja ON ja.job_id = i.job_id
			WHERE j.run_id = $1 AND NOT j.covered`, runID).Scan(&c.IssuesTotal, &c.IssuesNew)
		if err != nil {
			return err
		}
		pending, err := exists(ctx, tx, `
			SELECT 1 FROM jobs j LEFT JOIN job_analysis ja ON ja.job_id = j.id
			WHERE j.run_id = $1 AND NOT j.covered AND (j.state <> 'completed' OR ja.job_id IS NULL)`, runID)
		c.Analyzed = !pending
		return err
	})
	if err != nil {
		return ci.RunResultCounts{}, fmt.Errorf("count results of run %d: %w", runID, err)
	}
	return c, nil
}

// TestHistory returns the named test's results in the branch, newest first.
func (s *Store) TestHistory(ctx context.Context, branchID int64, name string, kind ci.FlowKind, limit int) ([]ci.TestResult, error) {
	var out []ci.TestResult
	err := s.read(ctx, func(tx querier) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM branches WHERE id = $1`, branchID); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("branch %d: %w", branchID, ci.ErrNotFound)
		}
		var p params
		q := `SELECT ` + resultCols + resultFrom + ` WHERE tc.branch_id = ` + p.add(branchID) +
			` AND tc.name = ` + p.add(name) + ` AND NOT j.covered`
		if kind != "" {
			q += ` AND f.kind = ` + p.add(string(kind))
		}
		q += ` ORDER BY tr.flow_id DESC, tr.job_id DESC LIMIT ` + p.add(sqlLimit(limit))
		var err error
		out, err = queryAll(ctx, s, tx, scanResult, q, p.args...)
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
	err := q.QueryRow(ctx, `
		SELECT j.id, j.flow_id, f.branch_id, j.name, j.agents_group, j.system, r.stage_name, f.kind
		FROM jobs j JOIN runs r ON r.id = j.run_id JOIN flows f ON f.id = j.flow_id WHERE j.id = $1`, jobID).
		Scan(&e.id, &e.flowID, &e.branchID, &e.name, &e.group, &e.system, &e.stage, &e.kind)
	if err != nil {
		return e, notFound(err, "job", jobID)
	}
	return e, nil
}

// historyQuery selects, for every test of job $1, up to $5 analysed results
// of its test case in CI flows before flow $2 of non-covered, completed jobs
// of group $3 and system $4, newest flow first. The LATERAL subquery reads
// each test case's results in order from the test_results_history index.
const historyQuery = `SELECT h.* FROM test_results cur CROSS JOIN LATERAL (
		SELECT ` + resultCols + ` FROM test_results tr
		JOIN test_cases tc ON tc.id = tr.test_case_id
		JOIN jobs j ON j.id = tr.job_id
		JOIN flows f ON f.id = tr.flow_id
		JOIN job_analysis ja ON ja.job_id = tr.job_id
		WHERE tr.test_case_id = cur.test_case_id AND tr.flow_id < $2 AND f.kind = 'ci' AND NOT j.covered
			AND j.agents_group = $3 AND j.system = $4 AND j.state = 'completed'
		ORDER BY tr.flow_id DESC, tr.job_id DESC LIMIT $5) h
	WHERE cur.job_id = $1
	ORDER BY cur.test_case_id, h.flow_id DESC, h.job_id DESC`

// history runs historyQuery for the job in one snapshot.
func (s *Store) history(ctx context.Context, jobID int64, before func(jobEnv) int64, limit int, what string) (map[string][]ci.TestResult, error) {
	var out map[string][]ci.TestResult
	err := s.read(ctx, func(tx querier) error {
		out = map[string][]ci.TestResult{}
		e, err := getJobEnv(ctx, tx, jobID)
		if err != nil {
			return err
		}
		rs, err := queryAll(ctx, s, tx, scanResult, historyQuery, jobID, before(e), e.group, e.system, int64(limit))
		if err != nil {
			return err
		}
		for _, r := range rs {
			out[r.Name] = append(out[r.Name], r)
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
	var found bool
	err := s.read(ctx, func(tx querier) error {
		out, found = nil, false
		e, err := getJobEnv(ctx, tx, jobID)
		if err != nil {
			return err
		}
		var prev int64
		err = tx.QueryRow(ctx, `
			SELECT j.id FROM jobs j
			JOIN runs r ON r.id = j.run_id
			JOIN flows f ON f.id = j.flow_id
			JOIN job_analysis ja ON ja.job_id = j.id
			WHERE j.name = $1 AND j.agents_group = $2 AND j.system = $3 AND j.flow_id < $4
				AND r.stage_name = $5 AND f.branch_id = $6 AND f.kind = 'ci'
				AND j.state = 'completed' AND j.result = 'ok' AND NOT j.covered
			ORDER BY j.flow_id DESC, j.id DESC LIMIT 1`,
			e.name, e.group, e.system, e.flowID, e.stage, e.branchID).Scan(&prev)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		out, err = queryAll(ctx, s, tx, scanIssue, `SELECT `+issueCols+issueFrom+` WHERE i.job_id = $1 ORDER BY i.path, i.line, i.id`, prev)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("previous issues of job %d: %w", jobID, err)
	}
	return out, found, nil
}

// SaveAnalysis stores the job's analysis and marks it analysed. The updates
// of results and issues are one statement each; IDs that are not the job's
// give ErrNotFound and roll everything back.
func (s *Store) SaveAnalysis(ctx context.Context, jobID int64, results []store.ResultAnalysis, issues []store.IssueAnalysis, at time.Time) error {
	// The last entry of an ID wins, as if they were applied in order.
	lastResult := map[int64]store.ResultAnalysis{}
	for _, r := range results {
		if !r.Change.Valid() {
			return fmt.Errorf("save analysis of job %d: result %d: change %q: %w", jobID, r.ID, r.Change, ci.ErrInvalid)
		}
		lastResult[r.ID] = r
	}
	var rIDs []int64
	var rChanges []string
	var rInst, rAge, rRel []int64
	for id, r := range lastResult {
		rIDs, rChanges = append(rIDs, id), append(rChanges, string(r.Change))
		rInst, rAge, rRel = append(rInst, int64(r.Instability)), append(rAge, int64(r.Age)), append(rRel, int64(r.Relevancy))
	}
	lastIssue := map[int64]int{}
	for _, i := range issues {
		lastIssue[i.ID] = i.Age
	}
	var iIDs, iAges []int64
	for id, age := range lastIssue {
		iIDs, iAges = append(iIDs, id), append(iAges, int64(age))
	}
	err := s.write(ctx, func(tx querier) error {
		if _, err := getJobHead(ctx, tx, jobID, shareJob); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO job_analysis (job_id, analyzed) VALUES ($1, $2) ON CONFLICT (job_id) DO NOTHING`, jobID, ts(at))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("job %d is analysed already: %w", jobID, ci.ErrConflict)
		}
		if len(rIDs) > 0 {
			tag, err := tx.Exec(ctx, `
				UPDATE test_results tr SET change = u.change, instability = u.instability, age = u.age, relevancy = u.relevancy
				FROM unnest($1::bigint[], $2::text[], $3::int[], $4::int[], $5::int[]) AS u (id, change, instability, age, relevancy)
				WHERE tr.id = u.id AND tr.job_id = $6`, rIDs, rChanges, rInst, rAge, rRel, jobID)
			if err != nil {
				return err
			}
			if int(tag.RowsAffected()) != len(rIDs) {
				return missingID(ctx, tx, "test result", "test_results", rIDs, jobID)
			}
		}
		if len(iIDs) > 0 {
			tag, err := tx.Exec(ctx, `
				UPDATE issues i SET age = u.age FROM unnest($1::bigint[], $2::int[]) AS u (id, age)
				WHERE i.id = u.id AND i.job_id = $3`, iIDs, iAges, jobID)
			if err != nil {
				return err
			}
			if int(tag.RowsAffected()) != len(iIDs) {
				return missingID(ctx, tx, "issue", "issues", iIDs, jobID)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save analysis of job %d: %w", jobID, err)
	}
	return nil
}

// missingID names one of ids that is not a row of the job in table.
func missingID(ctx context.Context, tx querier, what, table string, ids []int64, jobID int64) error {
	var id int64
	err := tx.QueryRow(ctx, `SELECT u.id FROM unnest($1::bigint[]) AS u (id)
		WHERE NOT EXISTS (SELECT 1 FROM `+table+` t WHERE t.id = u.id AND t.job_id = $2) ORDER BY u.id LIMIT 1`, ids, jobID).Scan(&id)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	return fmt.Errorf("%s %d of job %d: %w", what, id, jobID, ci.ErrNotFound)
}

// PendingAnalysis returns the run's completed, non-covered, unanalysed jobs.
func (s *Store) PendingAnalysis(ctx context.Context, runID int64) ([]ci.Job, error) {
	out, err := queryAll(ctx, s, s.q(), scanJob, `SELECT `+jobCols+` FROM jobs
		WHERE run_id = $1 AND NOT covered AND state = 'completed'
			AND NOT EXISTS (SELECT 1 FROM job_analysis ja WHERE ja.job_id = jobs.id)
		ORDER BY id`, runID)
	if err != nil {
		return nil, fmt.Errorf("pending analysis of run %d: %w", runID, err)
	}
	return out, nil
}

// AdjacentCIRun returns the run of the same stage in the previous or next CI flow.
func (s *Store) AdjacentCIRun(ctx context.Context, runID int64, next bool) (store.RunRef, bool, error) {
	var ref store.RunRef
	var found bool
	err := s.read(ctx, func(tx querier) error {
		ref, found = store.RunRef{}, false
		var branchID, flowID int64
		var stage string
		err := tx.QueryRow(ctx, `SELECT f.branch_id, r.flow_id, r.stage_name FROM runs r JOIN flows f ON f.id = r.flow_id WHERE r.id = $1`, runID).
			Scan(&branchID, &flowID, &stage)
		if err != nil {
			return notFound(err, "run", runID)
		}
		q := `SELECT r.id, r.flow_id, r.state FROM runs r JOIN flows f ON f.id = r.flow_id
			WHERE r.stage_name = $1 AND f.branch_id = $2 AND f.kind = 'ci' AND r.state <> 'manual' AND r.flow_id < $3
			ORDER BY r.flow_id DESC, r.id DESC LIMIT 1`
		if next {
			q = `SELECT r.id, r.flow_id, r.state FROM runs r JOIN flows f ON f.id = r.flow_id
			WHERE r.stage_name = $1 AND f.branch_id = $2 AND f.kind = 'ci' AND r.state <> 'manual' AND r.flow_id > $3
			ORDER BY r.flow_id, r.id LIMIT 1`
		}
		err = tx.QueryRow(ctx, q, stage, branchID, flowID).Scan(&ref.RunID, &ref.FlowID, &ref.State)
		if errors.Is(err, pgx.ErrNoRows) {
			ref = store.RunRef{}
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
			WHERE j.run_id = $1 AND NOT j.covered AND ja.job_id IS NULL`, ref.RunID)
		ref.Processed = !pending
		return err
	})
	if err != nil {
		return store.RunRef{}, false, fmt.Errorf("adjacent ci run of run %d: %w", runID, err)
	}
	return ref, found, nil
}

// ListRunsToAnalyze returns completed runs with unanalysed jobs.
func (s *Store) ListRunsToAnalyze(ctx context.Context) ([]int64, error) {
	out, err := queryAll(ctx, s, s.q(), func(sc pgx.Row) (int64, error) {
		var id int64
		return id, sc.Scan(&id)
	}, `SELECT r.id FROM runs r WHERE r.state = 'completed' AND EXISTS (
			SELECT 1 FROM jobs j LEFT JOIN job_analysis ja ON ja.job_id = j.id
			WHERE j.run_id = r.id AND NOT j.covered AND j.state = 'completed' AND ja.job_id IS NULL)
		ORDER BY r.flow_id, r.id`)
	if err != nil {
		return nil, fmt.Errorf("list runs to analyse: %w", err)
	}
	return out, nil
}
