// Package flowview prints flows, runs and jobs, shared by `kk flow`, `kk run`
// and `kk job`.
//
// The JSON (and YAML) shapes are the API's, with two guarantees for scripts:
// every job carries "agent" (its agent's name, "" before it has one) and
// "steps" (an array), and every flow and run carries "runs" and "jobs" arrays.
package flowview

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
)

// Job is the JSON view of a job.
type Job struct {
	api.JobDetail
	Agent string    `json:"agent"`
	Steps []ci.Step `json:"steps"`
}

// Run is the JSON view of a run.
type Run struct {
	api.RunDetail
	Jobs []Job `json:"jobs"`
}

// Flow is the JSON view of a flow.
type Flow struct {
	api.FlowDetail
	Runs []Run `json:"runs"`
}

// NewJob builds the view of a job.
func NewJob(j api.JobDetail) Job {
	steps := j.Steps
	if steps == nil {
		steps = []ci.Step{}
	}
	return Job{JobDetail: j, Agent: j.Agent, Steps: steps}
}

// NewRun builds the view of a run.
func NewRun(r api.RunDetail) Run {
	jobs := make([]Job, len(r.Jobs))
	for i, j := range r.Jobs {
		jobs[i] = NewJob(j)
	}
	return Run{RunDetail: r, Jobs: jobs}
}

// NewFlow builds the view of a flow.
func NewFlow(f api.FlowDetail) Flow {
	runs := make([]Run, len(f.Runs))
	for i, r := range f.Runs {
		runs[i] = NewRun(r)
	}
	return Flow{FlowDetail: f, Runs: runs}
}

// JobStatus is the one word shown for a job: its result once completed,
// else its state.
func JobStatus(j api.JobDetail) string {
	if j.State == ci.JobCompleted && j.Result != ci.JobResultNone {
		return string(j.Result)
	}
	return string(j.State)
}

// Failed returns the jobs that count against the flow: not covered by a rerun
// and completed without result ok.
func Failed(f api.FlowDetail) []api.JobDetail {
	var out []api.JobDetail
	for _, r := range f.Runs {
		for _, j := range r.Jobs {
			if !j.Covered && j.State == ci.JobCompleted && !j.Result.Ok() {
				out = append(out, j)
			}
		}
	}
	return out
}

// Succeeded reports whether the flow completed and all its current jobs are ok.
func Succeeded(f api.FlowDetail) bool {
	if f.State != ci.FlowCompleted {
		return false
	}
	for _, r := range f.Runs {
		for _, j := range r.Jobs {
			if !j.Covered && !(j.State == ci.JobCompleted && j.Result.Ok()) {
				return false
			}
		}
	}
	return true
}

// Summary counts the current jobs of a flow by status, e.g.
// "4 jobs: 2 ok, 1 running, 1 queued".
func Summary(f api.FlowDetail) string {
	counts := map[string]int{}
	total := 0
	for _, r := range f.Runs {
		for _, j := range r.Jobs {
			if j.Covered {
				continue
			}
			total++
			counts[JobStatus(j)]++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		if counts[keys[a]] != counts[keys[b]] {
			return counts[keys[a]] > counts[keys[b]]
		}
		return keys[a] < keys[b]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", counts[k], k)
	}
	s := fmt.Sprintf("%d jobs", total)
	if total == 1 {
		s = "1 job"
	}
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	return s
}

func kindLabel(kind ci.FlowKind, seq int64) string {
	if seq == 0 {
		return string(kind)
	}
	return fmt.Sprintf("%s #%d", kind, seq)
}

// PrintFlows prints a list of flows.
func PrintFlows(ios *iostreams.IOStreams, format output.Format, flows []ci.Flow) error {
	if format != output.Table {
		if flows == nil {
			flows = []ci.Flow{}
		}
		return output.Write(ios.Out, format, flows)
	}
	t := output.NewTable(ios, "id", "kind", "label", "state", "created", "finished")
	for _, fl := range flows {
		t.AddField(strconv.FormatInt(fl.ID, 10))
		t.AddField(kindLabel(fl.Kind, fl.KindSeq))
		t.AddField(fl.Label)
		t.AddColorField(string(fl.State), output.StateColor(string(fl.State)))
		t.AddField(output.Time(ios, fl.Created))
		t.AddField(output.TimePtr(ios, fl.Finished))
		t.EndRow()
	}
	return t.Render()
}

// PrintFlow prints a flow with its runs and jobs.
func PrintFlow(ios *iostreams.IOStreams, format output.Format, f api.FlowDetail) error {
	if format != output.Table {
		return output.Write(ios.Out, format, NewFlow(f))
	}
	kv := output.NewTable(ios)
	row(kv, "Flow:", strconv.FormatInt(f.ID, 10))
	if f.Project != "" || f.Branch != "" {
		row(kv, "Branch:", f.Project+"/"+f.Branch)
	}
	row(kv, "Kind:", kindLabel(f.Kind, f.KindSeq))
	if f.Label != "" {
		row(kv, "Label:", f.Label)
	}
	kv.AddField("State:")
	kv.AddColorField(string(f.State), output.StateColor(string(f.State)))
	kv.EndRow()
	if len(f.Args) > 0 {
		row(kv, "Args:", formatArgs(f.Args))
	}
	row(kv, "Created:", output.Time(ios, f.Created))
	if f.Finished != nil {
		row(kv, "Finished:", output.TimePtr(ios, f.Finished))
	}
	row(kv, "Jobs:", Summary(f))
	if err := kv.Render(); err != nil {
		return err
	}
	if len(f.Runs) == 0 {
		return nil
	}
	fmt.Fprintln(ios.Out)
	t := output.NewTable(ios, "run", "stage", "run state", "job", "name", "status", "agent", "duration")
	for _, r := range f.Runs {
		if len(r.Jobs) == 0 {
			runCells(t, r)
			t.AddField("")
			t.AddField("")
			t.AddField("")
			t.AddField("")
			t.AddField("")
			t.EndRow()
		}
		for _, j := range r.Jobs {
			runCells(t, r)
			jobCells(t, j)
			t.EndRow()
		}
	}
	return t.Render()
}

func runCells(t *output.TablePrinter, r api.RunDetail) {
	t.AddField(strconv.FormatInt(r.ID, 10))
	t.AddField(stageName(r))
	t.AddColorField(string(r.State), output.StateColor(string(r.State)))
}

func jobCells(t *output.TablePrinter, j api.JobDetail) {
	status := JobStatus(j)
	shown := status
	if j.Covered {
		shown += " (rerun)"
	}
	t.AddField(strconv.FormatInt(j.ID, 10))
	t.AddField(j.Name)
	t.AddColorField(shown, output.StateColor(status))
	t.AddField(j.Agent)
	t.AddField(output.Duration(j.Duration))
}

func stageName(r api.RunDetail) string {
	if r.Name != "" {
		return r.Name
	}
	return r.StageName
}

// PrintRun prints a run with its jobs.
func PrintRun(ios *iostreams.IOStreams, format output.Format, r api.RunDetail) error {
	if format != output.Table {
		return output.Write(ios.Out, format, NewRun(r))
	}
	kv := output.NewTable(ios)
	row(kv, "Run:", strconv.FormatInt(r.ID, 10))
	row(kv, "Stage:", stageName(r))
	row(kv, "Flow:", strconv.FormatInt(r.FlowID, 10))
	kv.AddField("State:")
	kv.AddColorField(string(r.State), output.StateColor(string(r.State)))
	kv.EndRow()
	if r.State == ci.RunManual {
		row(kv, "Note:", fmt.Sprintf("manual run: start it with `kk run start %d`", r.ID))
	}
	if r.Label != "" {
		row(kv, "Label:", r.Label)
	}
	if r.Reason != "" {
		row(kv, "Reason:", r.Reason)
	}
	if len(r.Args) > 0 {
		row(kv, "Args:", formatArgs(r.Args))
	}
	row(kv, "Jobs:", fmt.Sprintf("%d total, %d with errors", r.JobsTotal, r.JobsError))
	row(kv, "Created:", output.Time(ios, r.Created))
	if r.Started != nil {
		row(kv, "Started:", output.TimePtr(ios, r.Started))
	}
	if r.Finished != nil {
		row(kv, "Finished:", output.TimePtr(ios, r.Finished))
	}
	if err := kv.Render(); err != nil {
		return err
	}
	if len(r.Jobs) > 0 {
		fmt.Fprintln(ios.Out)
		t := output.NewTable(ios, "job", "name", "status", "agent", "duration")
		for _, j := range r.Jobs {
			jobCells(t, j)
			t.EndRow()
		}
		if err := t.Render(); err != nil {
			return err
		}
	}
	if len(r.Notifications) == 0 {
		return nil
	}
	fmt.Fprintln(ios.Out)
	t := output.NewTable(ios, "notification", "channel", "state", "message")
	for _, n := range r.Notifications {
		t.AddField(string(n.Event))
		t.AddField(n.Channel)
		t.AddColorField(string(n.State), notifyColor(n.State))
		t.AddField(n.Message)
		t.EndRow()
	}
	return t.Render()
}

// notifyColor colours a notification state like job states.
func notifyColor(s ci.NotifyState) string {
	switch s {
	case ci.NotifySent:
		return output.StateColor("ok")
	case ci.NotifyFailed:
		return output.StateColor("failed")
	}
	return output.StateColor(string(s))
}

// PrintJob prints a job with its steps.
func PrintJob(ios *iostreams.IOStreams, format output.Format, j api.JobDetail) error {
	if format != output.Table {
		return output.Write(ios.Out, format, NewJob(j))
	}
	kv := output.NewTable(ios)
	row(kv, "Job:", strconv.FormatInt(j.ID, 10))
	row(kv, "Name:", j.Name)
	row(kv, "Run:", strconv.FormatInt(j.RunID, 10))
	row(kv, "Flow:", strconv.FormatInt(j.FlowID, 10))
	kv.AddField("State:")
	kv.AddColorField(string(j.State), output.StateColor(string(j.State)))
	kv.EndRow()
	if j.Result != ci.JobResultNone {
		kv.AddField("Result:")
		kv.AddColorField(string(j.Result), output.StateColor(string(j.Result)))
		kv.EndRow()
	}
	if j.Covered {
		row(kv, "Covered:", "yes (a rerun replaced this job)")
	}
	if j.Message != "" {
		row(kv, "Message:", j.Message)
	}
	row(kv, "Agent:", j.Agent)
	row(kv, "Group:", j.Group)
	row(kv, "System:", j.System)
	row(kv, "Executor:", j.Executor)
	if j.Attempt > 0 {
		row(kv, "Attempt:", strconv.Itoa(j.Attempt))
	}
	if j.Started != nil {
		row(kv, "Started:", output.TimePtr(ios, j.Started))
	}
	if j.Duration > 0 {
		row(kv, "Duration:", output.Duration(j.Duration))
	}
	if err := kv.Render(); err != nil {
		return err
	}
	if len(j.Steps) == 0 {
		return nil
	}
	fmt.Fprintln(ios.Out)
	t := output.NewTable(ios, "step", "tool", "name", "status", "exit", "message")
	for _, s := range j.Steps {
		t.AddField(strconv.Itoa(s.Index))
		t.AddField(s.Tool)
		t.AddField(s.Name)
		t.AddColorField(string(s.Status), output.StateColor(string(s.Status)))
		exit := ""
		if s.ExitCode != nil {
			exit = strconv.Itoa(*s.ExitCode)
		}
		t.AddField(exit)
		msg := s.Message
		if msg == "" {
			msg = s.Reason
		}
		t.AddField(msg)
		t.EndRow()
	}
	return t.Render()
}

func row(t *output.TablePrinter, k, v string) {
	t.AddField(k)
	t.AddField(v)
	t.EndRow()
}

func formatArgs(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}
