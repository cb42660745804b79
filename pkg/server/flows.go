package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/logs"
	"github.com/kraken-go/kk/pkg/scheduler"
	"github.com/kraken-go/kk/pkg/store"
)

func (s *Server) createFlow(w http.ResponseWriter, r *http.Request) error {
	b, err := s.branchByID(r)
	if err != nil {
		return err
	}
	var req api.CreateFlow
	if err := decodeOptional(r, &req); err != nil {
		return err
	}
	f, err := s.cfg.Engine.CreateFlow(r.Context(), b, req.Kind, req.Args)
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("flow created", "flow_id", f.ID, "branch_id", b.ID, "kind", f.Kind, "user", userFrom(r).Name)
	d, err := s.flowDetail(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, d)
}

func (s *Server) listFlows(w http.ResponseWriter, r *http.Request) error {
	b, err := s.branchByID(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	kind := ci.FlowKind(q.Get("kind"))
	if kind != "" && kind != ci.FlowCI && kind != ci.FlowDEV {
		return badRequest("kind=%q: use ci or dev", kind)
	}
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return badRequest("limit=%q: give a number >= 0 (0 for all)", v)
		}
		limit = n
	}
	with := q.Get("with")
	if with != "" && with != "runs" {
		return badRequest("with=%q: use with=runs to get each flow with its runs and jobs", with)
	}
	fs, err := s.cfg.Store.ListFlows(r.Context(), b.ID, store.ListFlowsOpts{Kind: kind, Limit: limit})
	if err != nil {
		return err
	}
	if with == "" {
		return writeJSON(w, http.StatusOK, nonNil(fs))
	}
	// One request for a dashboard: the project, branch and agents are read
	// once for every flow.
	p, err := s.cfg.Store.GetProject(r.Context(), b.ProjectID)
	if err != nil {
		return err
	}
	info, err := s.jobInfo(r.Context())
	if err != nil {
		return err
	}
	out := make([]api.FlowDetail, 0, len(fs))
	for _, f := range fs {
		d, err := s.flowRuns(r.Context(), f, p.Name, b.Name, info)
		if err != nil {
			return err
		}
		out = append(out, d)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) flowByID(r *http.Request) (ci.Flow, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return ci.Flow{}, err
	}
	f, err := s.cfg.Store.GetFlow(r.Context(), id)
	if errors.Is(err, ci.ErrNotFound) {
		return f, notFoundf("flow %d does not exist: see `kk flow list PROJECT/BRANCH`", id)
	}
	return f, err
}

func (s *Server) getFlow(w http.ResponseWriter, r *http.Request) error {
	f, err := s.flowByID(r)
	if err != nil {
		return err
	}
	d, err := s.flowDetail(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

// jobInfo is what job details need besides the jobs: the agents' names and,
// for the wait reasons of queued jobs, their states and the groups.
type jobInfo struct {
	names  map[int64]string
	agents []scheduler.Candidate
	groups map[string]bool
}

func (s *Server) jobInfo(ctx context.Context) (jobInfo, error) {
	as, err := s.cfg.Store.ListAgents(ctx, store.ListAgentsOpts{})
	if err != nil {
		return jobInfo{}, err
	}
	gs, err := s.cfg.Store.ListGroups(ctx)
	if err != nil {
		return jobInfo{}, err
	}
	info := jobInfo{names: map[int64]string{}, groups: map[string]bool{}}
	for _, a := range as {
		info.names[a.ID] = a.Name
		state, _ := s.agentState(a, nil)
		info.agents = append(info.agents, scheduler.Candidate{Agent: a, State: state})
	}
	for _, g := range gs {
		info.groups[g.Name] = true
	}
	return info, nil
}

func (s *Server) flowDetail(ctx context.Context, f ci.Flow) (api.FlowDetail, error) {
	d := api.FlowDetail{Flow: f, Runs: []api.RunDetail{}}
	b, err := s.cfg.Store.GetBranch(ctx, f.BranchID)
	if err != nil {
		return d, err
	}
	p, err := s.cfg.Store.GetProject(ctx, b.ProjectID)
	if err != nil {
		return d, err
	}
	info, err := s.jobInfo(ctx)
	if err != nil {
		return d, err
	}
	return s.flowRuns(ctx, f, p.Name, b.Name, info)
}

// flowRuns returns the detail of a flow of the named project and branch.
func (s *Server) flowRuns(ctx context.Context, f ci.Flow, project, branch string, info jobInfo) (api.FlowDetail, error) {
	d := api.FlowDetail{Flow: f, Project: project, Branch: branch, Runs: []api.RunDetail{}}
	runs, err := s.cfg.Store.ListRuns(ctx, f.ID)
	if err != nil {
		return d, err
	}
	for _, run := range runs {
		rd, err := s.runDetail(ctx, run, info)
		if err != nil {
			return d, err
		}
		d.Runs = append(d.Runs, rd)
	}
	return d, nil
}

func (s *Server) runDetail(ctx context.Context, run ci.Run, info jobInfo) (api.RunDetail, error) {
	rd := api.RunDetail{Run: run, Name: run.StageName, Jobs: []api.JobDetail{}}
	jobs, err := s.cfg.Store.ListJobs(ctx, run.ID)
	if err != nil {
		return rd, err
	}
	if rd.Results, err = s.runResults(ctx, run.ID); err != nil {
		return rd, err
	}
	for _, j := range jobs {
		rd.Jobs = append(rd.Jobs, s.jobDetail(j, info))
	}
	return rd, nil
}

func (s *Server) jobDetail(j ci.Job, info jobInfo) api.JobDetail {
	if j.Steps == nil {
		j.Steps = []ci.Step{}
	}
	jd := api.JobDetail{Job: j, Agent: info.names[j.AgentID]}
	if j.State == ci.JobQueued {
		jd.WaitReason = scheduler.WaitReason(j, info.agents, info.groups[j.Group])
	}
	if j.Started != nil {
		end := s.cfg.Now()
		if j.Finished != nil {
			end = *j.Finished
		}
		jd.Duration = end.Sub(*j.Started).Seconds()
	}
	return jd
}

func (s *Server) runByID(r *http.Request) (ci.Run, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return ci.Run{}, err
	}
	run, err := s.cfg.Store.GetRun(r.Context(), id)
	if errors.Is(err, ci.ErrNotFound) {
		return run, notFoundf("run %d does not exist: see `kk flow show FLOW`", id)
	}
	return run, err
}

func (s *Server) writeRun(w http.ResponseWriter, r *http.Request, id int64) error {
	run, err := s.cfg.Store.GetRun(r.Context(), id)
	if err != nil {
		return err
	}
	info, err := s.jobInfo(r.Context())
	if err != nil {
		return err
	}
	rd, err := s.runDetail(r.Context(), run, info)
	if err != nil {
		return err
	}
	if rd.Notifications, err = s.cfg.Store.ListNotifications(r.Context(), run.ID); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rd)
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) error {
	run, err := s.runByID(r)
	if err != nil {
		return err
	}
	return s.writeRun(w, r, run.ID)
}

func (s *Server) startRun(w http.ResponseWriter, r *http.Request) error {
	run, err := s.runByID(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Engine.StartRun(r.Context(), run.ID); err != nil {
		return err
	}
	return s.writeRun(w, r, run.ID)
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) error {
	run, err := s.runByID(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Engine.CancelRun(r.Context(), run.ID); err != nil {
		return err
	}
	return s.writeRun(w, r, run.ID)
}

func (s *Server) rerunRun(w http.ResponseWriter, r *http.Request) error {
	run, err := s.runByID(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Engine.RerunRun(r.Context(), run.ID); err != nil {
		return err
	}
	return s.writeRun(w, r, run.ID)
}

func (s *Server) jobByID(r *http.Request) (ci.Job, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return ci.Job{}, err
	}
	j, err := s.cfg.Store.GetJob(r.Context(), id)
	if errors.Is(err, ci.ErrNotFound) {
		return j, notFoundf("job %d does not exist: see `kk flow show FLOW`", id)
	}
	return j, err
}

func (s *Server) writeJob(w http.ResponseWriter, r *http.Request, id int64) error {
	j, err := s.cfg.Store.GetJob(r.Context(), id)
	if err != nil {
		return err
	}
	info, err := s.jobInfo(r.Context())
	if err != nil {
		return err
	}
	jd := s.jobDetail(j, info)
	if jd.Attempts, err = s.cfg.Store.ListJobAttempts(r.Context(), id); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, jd)
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	j, err := s.jobByID(r)
	if err != nil {
		return err
	}
	return s.writeJob(w, r, j.ID)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) error {
	j, err := s.jobByID(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Engine.CancelJob(r.Context(), j.ID); err != nil {
		return err
	}
	return s.writeJob(w, r, j.ID)
}

func (s *Server) rerunJob(w http.ResponseWriter, r *http.Request) error {
	j, err := s.jobByID(r)
	if err != nil {
		return err
	}
	nj, err := s.cfg.Engine.RerunJob(r.Context(), j.ID)
	if err != nil {
		return err
	}
	return s.writeJob(w, r, nj.ID)
}

func (s *Server) jobLogs(w http.ResponseWriter, r *http.Request) error {
	j, err := s.jobByID(r)
	if err != nil {
		return err
	}
	if j.LogsPurged {
		return notFoundf("the log of job %d was deleted by retention: its branch keeps job logs for a while after a flow finishes (see `kk branch show`, docs/retention.md)", j.ID)
	}
	q := r.URL.Query()
	opts := logs.StreamOpts{Step: -1}
	if v := q.Get("step"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return badRequest("step=%q: give a step index >= 0", v)
		}
		if n >= len(j.Steps) {
			return notFoundf("job %d has %d step(s) (indexes 0 to %d); step %d does not exist", j.ID, len(j.Steps), len(j.Steps)-1, n)
		}
		opts.Step = n
	}
	switch q.Get("follow") {
	case "", "0", "false":
	case "1", "true":
		opts.Follow = true
	default:
		return badRequest("follow=%q: use true or false", q.Get("follow"))
	}
	offset, err := queryInt64(q, "offset", 0)
	if err != nil {
		return err
	}
	limit, err := queryInt64(q, "limit", 1)
	if err != nil {
		return err
	}
	tail, err := queryInt64(q, "tail", 1)
	if err != nil {
		return err
	}
	if tail > 0 && (opts.Follow || offset > 0 || limit > 0) {
		return badRequest("tail cannot be combined with follow, offset or limit: read the tail, then follow from offset=%s+LENGTH", logOffsetHeader)
	}
	if tail > maxLogTail {
		return badRequest("tail=%d: at most %d bytes", tail, maxLogTail)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if tail > 0 {
		tw := newTailWriter(int(tail))
		if err := s.cfg.Logs.Stream(r.Context(), tw, j.ID, opts); err != nil {
			return fmt.Errorf("read the tail of the log of job %d: %w", j.ID, err)
		}
		w.Header().Set(logOffsetHeader, strconv.FormatInt(tw.Offset(), 10))
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(tw.Bytes())
		return err
	}
	w.Header().Set(logOffsetHeader, strconv.FormatInt(offset, 10))
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	var out io.Writer = w
	if offset > 0 || limit > 0 {
		left := limit
		if left == 0 {
			left = -1
		}
		out = &rangeWriter{w: w, skip: offset, left: left}
	}
	if err := s.cfg.Logs.Stream(r.Context(), out, j.ID, opts); err != nil && !errors.Is(err, errRangeDone) && r.Context().Err() == nil {
		s.cfg.Logger.Warn("stream logs", "job_id", j.ID, "err", err)
	}
	return nil
}

// logOffsetHeader is the response header giving the log offset of the
// first byte of a log response (the tail's start, or the offset asked).
const logOffsetHeader = "X-Log-Offset"

// maxLogTail bounds the tail a log request may ask for.
const maxLogTail = 16 << 20

// queryInt64 parses an optional query parameter >= lowest (0 when absent).
func queryInt64(q url.Values, name string, lowest int64) (int64, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lowest {
		return 0, badRequest("%s=%q: give a whole number of bytes >= %d", name, v, lowest)
	}
	return n, nil
}
