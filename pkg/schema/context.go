package schema

import "sort"

// Legacy flat names for #{...} (Kraken's old interpolation syntax).
const (
	legacySecretSimple = "KK_SECRET_SIMPLE_"
	legacySecretUser   = "KK_SECRET_USER_"
	legacySecretKey    = "KK_SECRET_KEY_"
)

// Vars returns the names visible in #{...} expressions:
//
//	args, env, secrets            maps (missing keys read as None, like Jinja)
//	project, stage, branch_name   strings
//	branch                        {name, branch_name, data, data_ci, data_dev}
//	project_data                  the project scope's data (Kraken's project.data)
//	flow                          {id, kind, seq: {shared, own}, label, data, trigger}
//	run                           {id, seq: {shared, own}, label}
//	is_ci, is_dev                 bools
//	flow_label, run_label         strings
//
// plus Kraken's legacy flat names: KK_FLOW_SEQ (flow.seq.shared),
// KK_CI_DEV_FLOW_SEQ (flow.seq.own), KK_RUN_SEQ, KK_CI_DEV_RUN_SEQ, KK_FLOW_TYPE
// ("CI" or "DEV"), KK_BRANCH (repository branch), and for every secret
// KK_SECRET_SIMPLE_<name> (simple secrets) or KK_SECRET_USER_<name> and
// KK_SECRET_KEY_<name> (SSH key secrets).
//
// The maps of Flow.Data, Flow.Trigger and Secrets are shared, not copied.
func (c Context) Vars() map[string]any {
	v := c.tree()
	v["KK_FLOW_SEQ"] = c.Flow.Seq
	v["KK_CI_DEV_FLOW_SEQ"] = c.Flow.KindSeq
	v["KK_RUN_SEQ"] = c.Run.Seq
	v["KK_CI_DEV_RUN_SEQ"] = c.Run.Seq
	v["KK_FLOW_TYPE"] = c.kind()
	branch := c.BranchName
	if branch == "" {
		branch = c.Branch
	}
	v["KK_BRANCH"] = branch
	for _, name := range sortedKeys(c.Secrets) {
		switch s := c.Secrets[name].(type) {
		case string:
			v[legacySecretSimple+name] = s
		case map[string]any:
			if val, ok := s["secret"]; ok {
				v[legacySecretSimple+name] = val
			}
			if val, ok := firstKey(s, "username", "user"); ok {
				v[legacySecretUser+name] = val
			}
			if val, ok := s["key"]; ok {
				v[legacySecretKey+name] = val
			}
		}
	}
	return v
}

// tree is what stage code sees as ctx: the structured part of Vars.
func (c Context) tree() map[string]any {
	return map[string]any{
		"args":    stringMap(c.Args),
		"env":     stringMap(c.Env),
		"project": c.Project,
		"branch": map[string]any{"name": c.Branch, "branch_name": c.BranchName, "data": orEmpty(c.BranchData),
			"data_ci": orEmpty(c.BranchCIData), "data_dev": orEmpty(c.BranchDevData)},
		"project_data": orEmpty(c.ProjectData),
		"branch_name":  c.BranchName,
		"stage":        c.Stage,
		"flow": map[string]any{
			"id":      c.Flow.ID,
			"kind":    c.kind(),
			"seq":     map[string]any{"shared": c.Flow.Seq, "own": c.Flow.KindSeq},
			"label":   c.Flow.Label,
			"data":    orEmpty(c.Flow.Data),
			"trigger": orEmpty(c.Flow.Trigger),
		},
		"run": map[string]any{
			"id":    c.Run.ID,
			"seq":   map[string]any{"shared": c.Run.Seq, "own": c.Run.Seq},
			"label": c.Run.Label,
		},
		"is_ci":      c.IsCI,
		"is_dev":     !c.IsCI,
		"secrets":    orEmpty(c.Secrets),
		"flow_label": c.Flow.Label,
		"run_label":  c.Run.Label,
	}
}

// kind is the flow kind as Kraken shows it, derived from IsCI when unset.
func (c Context) kind() string {
	if c.Flow.Kind != "" {
		return c.Flow.Kind
	}
	if c.IsCI {
		return "CI"
	}
	return "DEV"
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func firstKey(m map[string]any, keys ...string) (any, bool) {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v, true
		}
	}
	return nil, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
