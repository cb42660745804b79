package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"strconv"
	"strings"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/webhook"
)

// Summary is what a notification says about a run.
type Summary struct {
	Event     ci.NotifyEvent
	ProjectID int64
	Project   string
	Branch    string
	Stage     string
	Flow      ci.Flow
	Run       ci.Run
	Counts    ci.RunResultCounts
	// Errors are the run's erred jobs (not covered by a rerun), at most
	// maxErrors.
	Errors []JobError
	// Trigger is the webhook data of the flow; nil for flows started by hand.
	Trigger *webhook.Trigger
	// RunURL links to the run in kkd's API; empty without --public-url.
	RunURL string
}

// JobError is one erred job.
type JobError struct {
	Name    string
	System  string
	Result  string
	Message string
}

const maxErrors = 10

// Failed tells whether the run counts as failed: a job erred, a test
// regressed or an issue is new. (Kraken ignores job errors in its GitHub
// status; kk does not.)
func (s *Summary) Failed() bool {
	return s.Run.JobsError > 0 || s.Counts.Regr > 0 || s.Counts.IssuesNew > 0
}

// Result is "success" or "failure" (for the end event).
func (s *Summary) Result() string {
	if s.Failed() {
		return "failure"
	}
	return "success"
}

func (s *Summary) round() int64 {
	if s.Event == ci.NotifyEnd && s.Run.Finished != nil {
		return s.Run.Finished.UnixMilli()
	}
	return 0
}

// Commit returns the commit the flow was triggered for, "" when none.
func (s *Summary) Commit() string {
	if s.Trigger == nil {
		return ""
	}
	if pr := s.Trigger.PullRequest; pr != nil && pr.Head.SHA != "" {
		return pr.Head.SHA
	}
	return s.Trigger.After
}

// FlowLabel is the flow's label, or its number.
func (s *Summary) FlowLabel() string {
	if s.Flow.Label != "" {
		return s.Flow.Label
	}
	return strconv.FormatInt(s.Flow.KindSeq, 10)
}

// Title is the one-line summary (the email subject).
func (s *Summary) Title() string {
	kind := strings.ToUpper(string(s.Flow.Kind))
	var b strings.Builder
	fmt.Fprintf(&b, "[kk] %s/%s %s flow %s, stage %s: ", s.Project, s.Branch, kind, s.FlowLabel(), s.Stage)
	if s.Event == ci.NotifyStart {
		b.WriteString("started")
		return b.String()
	}
	b.WriteString(strings.ToUpper(s.Result()))
	var why []string
	if s.Run.JobsError > 0 {
		why = append(why, plural(s.Run.JobsError, "job erred", "jobs erred"))
	}
	if s.Counts.Regr > 0 {
		why = append(why, plural(s.Counts.Regr, "regression", "regressions"))
	}
	if s.Counts.IssuesNew > 0 {
		why = append(why, plural(s.Counts.IssuesNew, "new issue", "new issues"))
	}
	if len(why) > 0 {
		b.WriteString(" (" + strings.Join(why, ", ") + ")")
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// PassRatio is "passed/total (pct%)", or "no tests".
func (s *Summary) PassRatio() string {
	c := s.Counts
	if c.TestsTotal == 0 {
		return "no tests"
	}
	return fmt.Sprintf("%d/%d (%.1f%%)", c.TestsPassed, c.TestsTotal, 100*float64(c.TestsPassed)/float64(c.TestsTotal))
}

// facts are the labelled lines every channel shows.
func (s *Summary) facts() [][2]string {
	f := [][2]string{
		{"Project", s.Project + "/" + s.Branch},
		{"Flow", fmt.Sprintf("%s %s (id %d)", strings.ToUpper(string(s.Flow.Kind)), s.FlowLabel(), s.Flow.ID)},
		{"Run", fmt.Sprintf("%s, label %s (id %d)", s.Stage, s.Run.Label, s.Run.ID)},
	}
	if s.Event == ci.NotifyEnd {
		f = append(f,
			[2]string{"Result", s.Result()},
			[2]string{"Jobs", fmt.Sprintf("%d total, %d erred", s.Run.JobsTotal, s.Run.JobsError)},
			[2]string{"Tests passed", s.PassRatio()},
			[2]string{"Regressions", strconv.Itoa(s.Counts.Regr)},
			[2]string{"Fixes", strconv.Itoa(s.Counts.Fix)},
			[2]string{"New issues", strconv.Itoa(s.Counts.IssuesNew)},
		)
	}
	if c := s.Commit(); c != "" {
		f = append(f, [2]string{"Commit", c})
	}
	if u := s.commitURL(); u != "" {
		f = append(f, [2]string{"Changes", u})
	}
	if pr := s.pr(); pr != nil {
		f = append(f, [2]string{"Pull request", fmt.Sprintf("#%d %s %s", pr.Number, pr.Title, pr.URL)})
	}
	if s.RunURL != "" {
		f = append(f, [2]string{"Details", s.RunURL})
	}
	f = append(f, [2]string{"Show", fmt.Sprintf("kk run show %d", s.Run.ID)})
	return f
}

func (s *Summary) pr() *webhook.PullRequest {
	if s.Trigger == nil {
		return nil
	}
	return s.Trigger.PullRequest
}

// commitURL links to the pushed changes (the compare page) or the commit.
func (s *Summary) commitURL() string {
	t := s.Trigger
	if t == nil {
		return ""
	}
	if t.Compare != "" {
		return t.Compare
	}
	for _, c := range t.Commits {
		if c.ID == t.After && c.URL != "" {
			return c.URL
		}
	}
	return ""
}

// Text is the plain text body.
func (s *Summary) Text() string {
	var b strings.Builder
	b.WriteString(s.Title() + "\n\n")
	for _, f := range s.facts() {
		fmt.Fprintf(&b, "%-14s %s\n", f[0]+":", f[1])
	}
	if len(s.Errors) > 0 {
		b.WriteString("\nErred jobs:\n")
		for _, e := range s.Errors {
			fmt.Fprintf(&b, "  - %s on %s: %s", e.Name, e.System, e.Result)
			if e.Message != "" {
				fmt.Fprintf(&b, ": %s", e.Message)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// HTML is the HTML body.
func (s *Summary) HTML() string {
	var b strings.Builder
	color := "#2eb67d"
	if s.Event == ci.NotifyEnd && s.Failed() {
		color = "#e01e5a"
	}
	fmt.Fprintf(&b, "<html><body><h3 style=\"color:%s\">%s</h3>\n<table>\n", color, html.EscapeString(s.Title()))
	for _, f := range s.facts() {
		v := html.EscapeString(f[1])
		if strings.HasPrefix(f[1], "http://") || strings.HasPrefix(f[1], "https://") {
			v = fmt.Sprintf("<a href=\"%s\">%s</a>", v, v)
		}
		fmt.Fprintf(&b, "<tr><th align=\"left\">%s</th><td>%s</td></tr>\n", html.EscapeString(f[0]), v)
	}
	b.WriteString("</table>\n")
	if len(s.Errors) > 0 {
		b.WriteString("<p>Erred jobs:</p><ul>\n")
		for _, e := range s.Errors {
			fmt.Fprintf(&b, "<li>%s on %s: %s %s</li>\n", html.EscapeString(e.Name), html.EscapeString(e.System),
				html.EscapeString(e.Result), html.EscapeString(e.Message))
		}
		b.WriteString("</ul>\n")
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

// summary loads what the notifications of the run say.
func (n *Notifier) summary(ctx context.Context, runID int64, event ci.NotifyEvent) (*Summary, error) {
	st := n.cfg.Store
	r, err := st.GetRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	f, err := st.GetFlow(ctx, r.FlowID)
	if err != nil {
		return nil, err
	}
	b, err := st.GetBranch(ctx, f.BranchID)
	if err != nil {
		return nil, err
	}
	p, err := st.GetProject(ctx, b.ProjectID)
	if err != nil {
		return nil, err
	}
	s := &Summary{Event: event, ProjectID: p.ID, Project: p.Name, Branch: b.Name, Stage: r.StageName, Flow: f, Run: r}
	if len(f.TriggerData) > 0 {
		var t webhook.Trigger
		if err := json.Unmarshal(f.TriggerData, &t); err == nil && t.Forge != "" {
			s.Trigger = &t
		}
	}
	if n.cfg.PublicURL != "" {
		s.RunURL = strings.TrimRight(n.cfg.PublicURL, "/") + api.Prefix + "/runs/" + strconv.FormatInt(r.ID, 10)
	}
	if event != ci.NotifyEnd {
		return s, nil
	}
	if s.Counts, err = st.RunResultCounts(ctx, runID); err != nil {
		return nil, err
	}
	jobs, err := st.ListJobs(ctx, runID)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if j.Covered || j.State != ci.JobCompleted || j.Result == ci.JobOK {
			continue
		}
		if len(s.Errors) == maxErrors {
			break
		}
		s.Errors = append(s.Errors, JobError{Name: j.Name, System: j.System, Result: string(j.Result), Message: j.Message})
	}
	return s, nil
}
