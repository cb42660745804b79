package planner

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/schema"
	"github.com/kraken-go/kk/pkg/store"
)

// Trigger kinds the planner runs, and the run reasons they record.
const (
	KindInterval = "interval"
	KindDate     = "date"
	KindCron     = "cron"
	KindRepo     = "repo"

	ReasonRepo = "commit to repo"
)

// firstSightGrace: a trigger is planned from when its stage was applied, or
// from when the planner first sees it when that is later by more than this
// (kkd upgraded, or no leader for a while): time before that never fires.
const firstSightGrace = 10 * time.Minute

// cronSearch bounds the search back for the latest missed cron instant.
const cronSearch = 48 * time.Hour

// rule is one parsed time or repo trigger of a stage.
type rule struct {
	kind string
	text string // stored as TriggerState.Rule
	cron *schema.Cron
	// every is the interval (also the repo trigger's poll period).
	every time.Duration
	date  time.Time
	repos []repoSpec
	// tokenSecret names the project secret holding the repo trigger's
	// access token ("": none).
	tokenSecret string
}

// repoSpec is one repository a repo trigger polls.
type repoSpec struct {
	URL    string `json:"url"`
	Branch string `json:"branch,omitempty"`
}

// rulesOf returns the planner's triggers of a stage schema. A trigger the
// planner cannot read (the schema was validated when stored, so only a
// stored schema of an older kkd) is returned as an error per kind.
func rulesOf(st *schema.Stage) ([]rule, map[string]error) {
	var out []rule
	bad := map[string]error{}
	t := st.Triggers
	if t.Interval != "" {
		if d, err := schema.ParseInterval(t.Interval); err != nil {
			bad[KindInterval] = err
		} else {
			out = append(out, rule{kind: KindInterval, text: t.Interval, every: d})
		}
	}
	if t.Date != "" {
		if d, err := schema.ParseDate(t.Date); err != nil {
			bad[KindDate] = err
		} else {
			out = append(out, rule{kind: KindDate, text: t.Date, date: d})
		}
	}
	if t.Cron != "" {
		if c, err := schema.ParseCron(t.Cron); err != nil {
			bad[KindCron] = err
		} else {
			out = append(out, rule{kind: KindCron, text: t.Cron, cron: c})
		}
	}
	if t.Repo != nil {
		if r, err := repoRule(t.Repo); err != nil {
			bad[KindRepo] = err
		} else {
			out = append(out, r)
		}
	}
	return out, bad
}

// repoRule reads {url, branch, interval} or {repos: [{url, branch}], interval}.
func repoRule(m map[string]any) (rule, error) {
	text, err := json.Marshal(m) // map keys sorted: a stable rule text
	if err != nil {
		return rule{}, fmt.Errorf("repo trigger: %w", err)
	}
	r := rule{kind: KindRepo, text: string(text)}
	switch iv := m["interval"].(type) {
	case string:
		if r.every, err = schema.ParseInterval(iv); err != nil {
			return rule{}, fmt.Errorf("repo trigger: %w", err)
		}
	case float64:
		r.every = time.Duration(iv * float64(time.Second))
	case int64:
		r.every = time.Duration(iv) * time.Second
	case int:
		r.every = time.Duration(iv) * time.Second
	default:
		return rule{}, fmt.Errorf("repo trigger: interval missing: give e.g. \"10m\"")
	}
	if r.every <= 0 {
		return rule{}, fmt.Errorf("repo trigger: interval must be positive")
	}
	str := func(v any) string { s, _ := v.(string); return s }
	if u := str(m["url"]); u != "" {
		r.repos = append(r.repos, repoSpec{URL: u, Branch: str(m["branch"])})
	}
	if l, ok := m["repos"].([]any); ok {
		for _, e := range l {
			if em, ok := e.(map[string]any); ok && str(em["url"]) != "" {
				r.repos = append(r.repos, repoSpec{URL: str(em["url"]), Branch: str(em["branch"])})
			}
		}
	}
	if len(r.repos) == 0 {
		return rule{}, fmt.Errorf("repo trigger: no repository url")
	}
	r.tokenSecret = str(m["token_secret"])
	return r, nil
}

// sinceFor is when a trigger of s first seen at now is planned from.
func sinceFor(s ci.Stage, now time.Time) time.Time {
	if s.Updated.IsZero() || now.Sub(s.Updated) > firstSightGrace || s.Updated.After(now) {
		return now.Truncate(time.Millisecond)
	}
	return s.Updated.Truncate(time.Millisecond)
}

// base is the time after which the trigger's next instant is looked for.
func base(st store.TriggerState) time.Time {
	if st.LastFired.After(st.Since) {
		return st.LastFired
	}
	return st.Since
}

// due returns the instant to fire at now, if one is due: the latest scheduled
// instant after the last fire (or Since) that is not after now. Instants
// missed while no planner ran are coalesced into this one fire. Not for repo
// triggers.
func (r rule) due(st store.TriggerState, now time.Time) (time.Time, bool) {
	b := base(st)
	switch r.kind {
	case KindInterval:
		first := b.Add(r.every)
		if first.After(now) {
			return time.Time{}, false
		}
		k := int64(now.Sub(b) / r.every)
		return b.Add(time.Duration(k) * r.every), true
	case KindDate:
		if !st.LastFired.IsZero() || r.date.Before(st.Since) || r.date.After(now) {
			return time.Time{}, false
		}
		return r.date, true
	case KindCron:
		first := r.cron.Next(b.UTC())
		if first.IsZero() || first.After(now) {
			return time.Time{}, false
		}
		return lastCron(r.cron, first, now), true
	}
	return time.Time{}, false
}

// lastCron returns the latest instant of c that is not after now, given
// first, an instant not after now.
func lastCron(c *schema.Cron, first, now time.Time) time.Time {
	from := first
	if now.Sub(first) > cronSearch {
		// Long downtime: look in the last two days first.
		if t := c.Next(now.Add(-cronSearch).UTC()); !t.IsZero() && !t.After(now) {
			from = t
		}
	}
	last := from
	for i := 0; i < math.MaxInt32; i++ {
		t := c.Next(last)
		if t.IsZero() || t.After(now) {
			return last
		}
		last = t
	}
	return last
}

// next returns the next time the trigger fires after now (given it has no due
// instant), or zero when never.
func (r rule) next(st store.TriggerState, now time.Time) time.Time {
	b := base(st)
	switch r.kind {
	case KindInterval:
		if b.After(now) {
			return b.Add(r.every)
		}
		k := int64(now.Sub(b)/r.every) + 1
		return b.Add(time.Duration(k) * r.every)
	case KindDate:
		if !st.LastFired.IsZero() || r.date.Before(st.Since) {
			return time.Time{}
		}
		return r.date
	case KindCron:
		after := now
		if b.After(after) {
			after = b
		}
		return r.cron.Next(after.UTC())
	case KindRepo:
		if st.Checked.IsZero() {
			return st.Since
		}
		return st.Checked.Add(r.every)
	}
	return time.Time{}
}

// reason is the run reason of a fire of the trigger.
func (r rule) reason() string {
	if r.kind == KindRepo {
		return ReasonRepo
	}
	return r.kind
}

// Entry is one trigger of a stage in the schedule.
type Entry struct {
	StageID   int64
	Stage     string
	Enabled   bool
	Kind      string
	Rule      string
	LastFired time.Time // zero: never
	LastPoll  time.Time // repo: the last poll; zero: none yet
	Next      time.Time // zero: never (see Note)
	Note      string
}

// Schedule lists the time and repo triggers of a branch's stages with their
// last and next fire times at now, from the stored trigger states (a trigger
// the planner did not see yet is shown as it will be planned).
func Schedule(stages []ci.Stage, states []store.TriggerState, now time.Time) []Entry {
	byKey := map[string]store.TriggerState{}
	for _, s := range states {
		byKey[strconv.FormatInt(s.StageID, 10)+"/"+s.Kind] = s
	}
	var out []Entry
	for _, s := range stages {
		sch, err := engine.ParseStageSchema(s)
		if err != nil {
			out = append(out, Entry{StageID: s.ID, Stage: s.Name, Enabled: s.Enabled, Note: err.Error()})
			continue
		}
		rules, bad := rulesOf(sch)
		for _, r := range rules {
			e := Entry{StageID: s.ID, Stage: s.Name, Enabled: s.Enabled, Kind: r.kind, Rule: r.text}
			st, ok := byKey[strconv.FormatInt(s.ID, 10)+"/"+r.kind]
			if !ok || st.Rule != r.text {
				st = store.TriggerState{StageID: s.ID, Kind: r.kind, Rule: r.text, Since: sinceFor(s, now), LastFired: st.LastFired}
			}
			e.LastFired, e.LastPoll = st.LastFired, st.Checked
			switch {
			case !s.Enabled:
				e.Note = "stage disabled"
			case r.kind == KindRepo:
				e.Next = r.next(st, now)
				if e.Next.Before(now) {
					e.Next = now
				}
				e.Note = "polls every " + r.every.String()
			default:
				if at, ok := r.due(st, now); ok {
					e.Next, e.Note = now, "due (missed "+at.UTC().Format(time.RFC3339)+")"
				} else {
					e.Next = r.next(st, now)
				}
				if e.Next.IsZero() {
					e.Note = "no further fire"
					if r.kind == KindDate && st.LastFired.IsZero() {
						e.Note = "the date was past when the stage was applied"
					}
				}
			}
			out = append(out, e)
		}
		for _, kind := range []string{KindInterval, KindDate, KindCron, KindRepo} {
			if err, ok := bad[kind]; ok {
				out = append(out, Entry{StageID: s.ID, Stage: s.Name, Enabled: s.Enabled, Kind: kind, Note: "invalid: " + err.Error()})
			}
		}
	}
	return out
}
