package schema

import (
	"fmt"
	"strings"
)

// topKeys are the keys a stage dict may have (Kraken's schemaval.SCHEMA plus
// the documented run timeout).
var topKeys = []string{"parent", "triggers", "parameters", "configs", "flow_label", "run_label", "jobs", "notification", "timeout"}

// Keys of the nested objects.
var (
	jobKeys          = []string{"name", "timeout", "steps", "environments"}
	envKeys          = []string{"agents_group", "system", "executor", "config", "network"}
	paramKeys        = []string{"name", "type", "default", "description"}
	triggerKeys      = []string{"parent", "manual", "interval", "date", "cron", "repo", "github", "gitlab", "gitea", "radicle"}
	repoKeys         = []string{"url", "branch", "repos", "interval", "git_cfg", "token_secret"}
	repoEntryKeys    = []string{"url", "branch"}
	notificationKeys = []string{"email", "slack", "github", "discord", "radicle"}
	executors        = []string{"local", "docker", "lxd"}
)

// notificationTargets maps each notification channel with an object value
// to its required key.
var notificationTargets = map[string]string{
	"slack":   "channel",
	"github":  "credentials",
	"discord": "webhook",
}

// notificationOptional are the optional keys of those channels: slack's
// token (else kkd's --slack-token).
var notificationOptional = map[string][]string{"slack": {"token"}}

// validateStage checks the converted stage dict and builds the Stage, with
// defaults filled in. vars supplies Vars for #{...} in integer fields.
func validateStage(m map[string]any, vars func() map[string]any) (*Stage, []issue) {
	v := &validator{vars: vars}
	st := &Stage{Parent: "root", Parameters: []Parameter{}, Jobs: []Job{}}
	v.unknownKeys(nil, m, topKeys, "")
	if x, ok := m["parent"]; ok {
		if s, ok := v.str(path{{key: "parent"}}, x); ok && s != "" {
			st.Parent = s
		}
	}
	if x, ok := m["triggers"]; ok {
		st.Triggers = v.triggers(path{{key: "triggers"}}, x)
	}
	if st.Triggers.isEmpty() {
		parent := true
		st.Triggers = Triggers{Parent: &parent}
	}
	if x, ok := m["parameters"]; ok {
		st.Parameters = v.parameters(path{{key: "parameters"}}, x)
	}
	if x, ok := m["configs"]; ok {
		st.Configs = v.configs(path{{key: "configs"}}, x)
	}
	if x, ok := m["flow_label"]; ok {
		st.FlowLabel, _ = v.str(path{{key: "flow_label"}}, x)
	}
	if x, ok := m["run_label"]; ok {
		st.RunLabel, _ = v.str(path{{key: "run_label"}}, x)
	}
	if x, ok := m["jobs"]; ok {
		st.Jobs = v.jobs(path{{key: "jobs"}}, x)
	}
	if x, ok := m["notification"]; ok {
		st.Notification = v.notification(path{{key: "notification"}}, x)
	}
	if x, ok := m["timeout"]; ok {
		st.Timeout, _ = v.intField(path{{key: "timeout"}}, x, 60)
	}
	if len(v.issues) > 0 {
		return nil, v.issues
	}
	return st, nil
}

// isEmpty reports whether no trigger is set (Kraken then uses {parent: true}).
func (t Triggers) isEmpty() bool {
	return t.Parent == nil && !t.Manual && t.Interval == "" && t.Date == "" &&
		t.Cron == "" && t.Repo == nil && len(t.Webhooks) == 0
}

func (v *validator) triggers(p path, x any) Triggers {
	var t Triggers
	m, ok := v.dict(p, x)
	if !ok {
		return t
	}
	v.unknownKeys(p, m, triggerKeys, " in triggers")
	if x, ok := m["parent"]; ok {
		if b, ok := v.boolean(p.key("parent"), x); ok {
			t.Parent = &b
		}
	}
	if x, ok := m["manual"]; ok {
		t.Manual, _ = v.boolean(p.key("manual"), x)
	}
	if x, ok := m["interval"]; ok {
		if s, ok := v.str(p.key("interval"), x); ok {
			if _, err := ParseInterval(s); err != nil {
				v.add(p.key("interval"), "%v", err)
			}
			t.Interval = s
		}
	}
	if x, ok := m["date"]; ok {
		if s, ok := v.str(p.key("date"), x); ok {
			if _, err := ParseDate(s); err != nil {
				v.add(p.key("date"), "%v", err)
			}
			t.Date = s
		}
	}
	if x, ok := m["cron"]; ok {
		if s, ok := v.str(p.key("cron"), x); ok {
			if _, err := ParseCron(s); err != nil {
				v.add(p.key("cron"), "%v", err)
			}
			t.Cron = s
		}
	}
	if x, ok := m["repo"]; ok {
		t.Repo = v.repoTrigger(p.key("repo"), x)
	}
	for _, k := range webhookKeys {
		if x, ok := m[k]; ok {
			if v.webhook(p.key(k), x) {
				if t.Webhooks == nil {
					t.Webhooks = map[string]any{}
				}
				t.Webhooks[k] = x
			}
		}
	}
	return t
}

// repoTrigger checks {url, branch, interval, git_cfg} or {repos: [...], ...}.
func (v *validator) repoTrigger(p path, x any) map[string]any {
	m, ok := v.dict(p, x)
	if !ok {
		return nil
	}
	v.unknownKeys(p, m, repoKeys, " in repo trigger")
	_, hasURL := m["url"]
	_, hasRepos := m["repos"]
	switch {
	case hasURL && hasRepos:
		v.add(p.key("repos"), "give either url or repos, not both")
	case !hasURL && !hasRepos:
		v.add(p, "missing required key \"url\" (or \"repos\") in repo trigger")
	}
	for _, k := range []string{"url", "branch"} {
		if x, ok := m[k]; ok {
			v.str(p.key(k), x)
		}
	}
	if x, ok := m["token_secret"]; ok {
		if s, ok := x.(string); !ok || s == "" {
			v.add(p.key("token_secret"), "token_secret must name a simple project secret holding an access token (e.g. \"gh-token\"), got %s", describe(x))
		}
	}
	if x, ok := m["repos"]; ok {
		if l, ok := v.list(p.key("repos"), x); ok {
			for i, e := range l {
				ep := p.key("repos").index(i)
				if rm, ok := v.dict(ep, e); ok {
					v.unknownKeys(ep, rm, repoEntryKeys, " in repos")
					if v.required(ep, rm, "url", " in repos") {
						v.str(ep.key("url"), rm["url"])
					}
					if b, ok := rm["branch"]; ok {
						v.str(ep.key("branch"), b)
					}
				}
			}
		}
	}
	if v.required(p, m, "interval", " in repo trigger (e.g. \"10m\")") {
		switch iv := m["interval"].(type) {
		case string:
			if _, err := ParseInterval(iv); err != nil {
				v.add(p.key("interval"), "%v", err)
			}
		default:
			v.integer(p.key("interval"), iv, 1)
		}
	}
	if x, ok := m["git_cfg"]; ok {
		v.strMap(p.key("git_cfg"), x)
	}
	return m
}

// webhook accepts the shapes a webhook trigger may take: a bool, an event
// name, a list of event names, or a dict of events.
func (v *validator) webhook(p path, x any) bool {
	switch x := x.(type) {
	case bool, string:
		return true
	case []any:
		_, ok := v.strList(p, x)
		return ok
	case map[string]any:
		return true
	}
	v.add(p, "expected a bool, an event name, a list of event names or a dict, got %s", describe(x))
	return false
}

func (v *validator) parameters(p path, x any) []Parameter {
	l, ok := v.list(p, x)
	if !ok {
		return []Parameter{}
	}
	out := make([]Parameter, 0, len(l))
	seen := map[string]int{}
	for i, e := range l {
		ep := p.index(i)
		m, ok := v.dict(ep, e)
		if !ok {
			continue
		}
		v.unknownKeys(ep, m, paramKeys, " in parameter")
		prm := Parameter{Type: "string"}
		if v.required(ep, m, "name", " in parameter") {
			prm.Name, _ = v.str(ep.key("name"), m["name"])
			if j, dup := seen[prm.Name]; dup && prm.Name != "" {
				v.add(ep.key("name"), "duplicate parameter name %q (also parameters[%d])", short(prm.Name), j)
			}
			seen[prm.Name] = i
		}
		if x, ok := m["type"]; ok {
			if s, ok := v.enum(ep.key("type"), x, []string{"string"}, false); ok {
				prm.Type = s
			}
		}
		if x, ok := m["default"]; ok {
			prm.Default, _ = v.str(ep.key("default"), x)
		}
		if x, ok := m["description"]; ok {
			prm.Description, _ = v.str(ep.key("description"), x)
		}
		out = append(out, prm)
	}
	return out
}

func (v *validator) configs(p path, x any) []map[string]string {
	l, ok := v.list(p, x)
	if !ok {
		return nil
	}
	out := make([]map[string]string, 0, len(l))
	for i, e := range l {
		if m, ok := v.strMap(p.index(i), e); ok {
			out = append(out, m)
		}
	}
	return out
}

func (v *validator) jobs(p path, x any) []Job {
	l, ok := v.list(p, x)
	if !ok {
		return []Job{}
	}
	out := make([]Job, 0, len(l))
	seen := map[string]int{}
	for i, e := range l {
		jp := p.index(i)
		job, ok := v.job(jp, e)
		if !ok {
			continue
		}
		if j, dup := seen[job.Name]; dup {
			v.add(jp.key("name"), "duplicate job name %q (also jobs[%d]); job names must be unique within a stage", short(job.Name), j)
		}
		seen[job.Name] = i
		out = append(out, job)
	}
	return out
}

func (v *validator) job(p path, x any) (Job, bool) {
	var job Job
	m, ok := v.dict(p, x)
	if !ok {
		return job, false
	}
	before := len(v.issues)
	v.unknownKeys(p, m, jobKeys, " in job")
	if v.required(p, m, "name", " in job") {
		if s, ok := v.str(p.key("name"), m["name"]); ok {
			if strings.TrimSpace(s) == "" {
				v.add(p.key("name"), "job name must not be empty")
			}
			job.Name = s
		}
	}
	if x, ok := m["timeout"]; ok {
		job.Timeout, _ = v.intField(p.key("timeout"), x, 30)
	}
	job.Steps = []Step{}
	if v.required(p, m, "steps", " in job") {
		if l, ok := v.list(p.key("steps"), m["steps"]); ok {
			for i, e := range l {
				if st := v.step(p.key("steps").index(i), e); st != nil {
					job.Steps = append(job.Steps, st)
				}
			}
		}
	}
	if v.required(p, m, "environments", " in job") {
		if l, ok := v.list(p.key("environments"), m["environments"]); ok {
			if len(l) == 0 {
				v.add(p.key("environments"), "a job needs at least one environment")
			}
			for i, e := range l {
				if env, ok := v.environment(p.key("environments").index(i), e); ok {
					job.Environments = append(job.Environments, env)
				}
			}
		}
	}
	return job, len(v.issues) == before
}

func (v *validator) environment(p path, x any) (Environment, bool) {
	env := Environment{Executor: "local"}
	m, ok := v.dict(p, x)
	if !ok {
		return env, false
	}
	before := len(v.issues)
	v.unknownKeys(p, m, envKeys, " in environment")
	if v.required(p, m, "agents_group", " in environment") {
		if s, ok := v.str(p.key("agents_group"), m["agents_group"]); ok {
			if s == "" {
				v.add(p.key("agents_group"), "agents_group must not be empty (use \"all\" for every agent)")
			}
			env.AgentsGroup = s
		}
	}
	if v.required(p, m, "system", " in environment") {
		if sys, ok := v.strOrList(p.key("system"), m["system"]); ok {
			if len(sys) == 0 {
				v.add(p.key("system"), "system must name at least one system (use \"any\" for no preference)")
			}
			env.System = sys
		}
	}
	if x, ok := m["executor"]; ok {
		if s, ok := v.enum(p.key("executor"), x, executors, true); ok {
			env.Executor = s
		}
	}
	if x, ok := m["network"]; ok && x != nil {
		if s, ok := v.str(p.key("network"), x); ok {
			env.Network = s
		}
	}
	env.Config = m["config"]
	return env, len(v.issues) == before
}

func (v *validator) notification(p path, x any) map[string]any {
	m, ok := v.dict(p, x)
	if !ok {
		return nil
	}
	v.unknownKeys(p, m, notificationKeys, " in notification")
	if x, ok := m["email"]; ok {
		v.strOrList(p.key("email"), x)
	}
	if _, ok := m["radicle"]; ok {
		// Kraken posts them to GitHub's API (a bug); kk has no Radicle client.
		v.add(p.key("radicle"), "radicle notifications are not supported: remove the radicle key (github, discord, slack and email are)")
	}
	for _, ch := range sortedKeys(notificationTargets) {
		x, ok := m[ch]
		if !ok {
			continue
		}
		cp := p.key(ch)
		cm, ok := v.dict(cp, x)
		if !ok {
			continue
		}
		key := notificationTargets[ch]
		v.unknownKeys(cp, cm, append([]string{key}, notificationOptional[ch]...), fmt.Sprintf(" in %s notification", ch))
		if v.required(cp, cm, key, fmt.Sprintf(" in %s notification", ch)) {
			v.str(cp.key(key), cm[key])
		}
		for _, k := range notificationOptional[ch] {
			if x, ok := cm[k]; ok {
				v.str(cp.key(k), x)
			}
		}
	}
	return m
}
