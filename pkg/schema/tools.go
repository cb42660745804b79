package schema

import "sort"

// ptype is the type of a tool parameter.
type ptype int

const (
	tString    ptype = iota // string
	tInt                    // integer >= min, or a #{...} string
	tBool                   // bool, or a #{...} string
	tEnum                   // one of enum, or a #{...} string
	tStrOrList              // string or list of strings
	tStrList                // list of strings
	tStrMap                 // dict of strings
	tIntOrStr               // integer >= min or any string (Kraken's oneOf)
	tFiles                  // values_collect files: list of {name, namespace}
	tAny                    // anything JSON
)

// param describes one parameter of a tool.
type param struct {
	name     string
	typ      ptype
	required bool
	min      int64
	enum     []string
}

// toolSpec is the parameter schema of a built-in tool. open tools (local_tool)
// accept keys beyond params. check enforces rules across parameters.
type toolSpec struct {
	params []param
	open   bool
	check  func(v *validator, p path, step map[string]any)
}

// commonParams are accepted by every step, whatever its tool.
var commonParams = [...]param{
	{name: "tool", typ: tString, required: true},
	{name: "name", typ: tString},
	{name: "attempts", typ: tInt, min: 1},
	{name: "sleep_time_after_attempt", typ: tInt, min: 0},
	{name: "when", typ: tString},
}

// Shared parameter definitions.
var (
	pCwd     = param{name: "cwd", typ: tString}
	pTimeout = param{name: "timeout", typ: tInt, min: 1}
)

// tools are the parameter schemas of Kraken's built-in tools (initdb.py and
// schemaval.py), in the order Kraken documents their parameters.
var tools = map[string]toolSpec{
	"shell": {params: []param{
		{name: "cmd", typ: tString},
		{name: "script", typ: tString},
		pCwd,
		{name: "user", typ: tString},
		{name: "env", typ: tStrMap},
		pTimeout,
		{name: "background", typ: tBool},
		{name: "shell_exe", typ: tString},
		{name: "ssh-key", typ: tString},
	}, check: checkShell},
	"git": {params: []param{
		{name: "checkout", typ: tString, required: true},
		{name: "branch", typ: tString},
		{name: "destination", typ: tString},
		{name: "ssh-key", typ: tString},
		{name: "access-token", typ: tString},
		pTimeout,
		{name: "git_cfg", typ: tStrMap},
	}},
	"artifacts": {params: []param{
		{name: "action", typ: tEnum, enum: []string{"upload", "download"}},
		{name: "source", typ: tStrOrList, required: true},
		{name: "destination", typ: tString},
		pCwd,
		{name: "public", typ: tBool},
		{name: "report_entry", typ: tString},
	}},
	"cache": {params: []param{
		{name: "action", typ: tEnum, enum: []string{"save", "restore"}, required: true},
		{name: "key", typ: tString},
		{name: "keys", typ: tStrList},
		{name: "paths", typ: tStrList},
		{name: "expiry", typ: tString},
	}, check: checkCache},
	"data": {params: []param{
		{name: "file", typ: tString},
		{name: "value", typ: tAny},
		pCwd,
		{name: "operation", typ: tEnum, enum: []string{"set", "jq", "jsonpatch", "get"}},
		{name: "json_pointer", typ: tString},
		{name: "scope", typ: tEnum, enum: []string{"flow", "branch", "branch-ci", "branch-dev", "project"}},
	}, check: checkData},
	"pytest": {params: []param{
		{name: "pytest_exe", typ: tString},
		{name: "params", typ: tString},
		{name: "pythonpath", typ: tString},
		pCwd,
		pTimeout,
	}},
	"junit_collect": {params: []param{
		{name: "file_glob", typ: tString, required: true},
		pCwd,
	}},
	"gotest": {params: []param{
		{name: "go_exe", typ: tString},
		{name: "params", typ: tString},
		pCwd,
		pTimeout,
	}},
	"values_collect": {params: []param{
		{name: "files", typ: tFiles, required: true},
		pCwd,
	}},
	"pylint": {params: []param{
		{name: "pylint_exe", typ: tString},
		{name: "rcfile", typ: tString},
		{name: "modules_or_packages", typ: tString, required: true},
		pCwd,
		pTimeout,
	}},
	"nglint": {params: []param{pCwd}},
	"cloc": {params: []param{
		{name: "not-match-f", typ: tString},
		{name: "exclude-dir", typ: tString},
		pCwd,
	}},
	"rndtest": {params: []param{
		{name: "count", typ: tIntOrStr, min: 1},
		{name: "override_result", typ: tIntOrStr, min: 0},
	}},
	"local_tool": {params: []param{
		{name: "tool_location", typ: tString},
		{name: "tool_entry", typ: tString},
	}, open: true},
}

// ToolNames returns the names of the built-in tools whose parameters are
// known, sorted.
func ToolNames() []string {
	names := make([]string, 0, len(tools))
	for n := range tools {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// allowedKeys lists the keys a step of this tool may have: the tool's
// parameters, then the common step fields.
func (t toolSpec) allowedKeys() []string {
	keys := make([]string, 0, len(t.params)+len(commonParams))
	for _, p := range t.params {
		keys = append(keys, p.name)
	}
	for _, p := range commonParams {
		keys = append(keys, p.name)
	}
	return keys
}

// checkShell: exactly one of cmd and script.
func checkShell(v *validator, p path, step map[string]any) {
	_, cmd := step["cmd"]
	_, script := step["script"]
	switch {
	case cmd && script:
		v.add(p.key("script"), "give either cmd or script, not both")
	case !cmd && !script:
		v.add(p, "missing required key \"cmd\" or \"script\" for tool shell")
	}
}

// checkCache: save needs key and paths; restore needs key or keys.
func checkCache(v *validator, p path, step map[string]any) {
	_, key := step["key"]
	_, keys := step["keys"]
	_, paths := step["paths"]
	switch step["action"] {
	case "save":
		if !key {
			v.add(p, "missing required key \"key\" for cache action save")
		}
		if !paths {
			v.add(p, "missing required key \"paths\" for cache action save")
		}
	case "restore":
		if !key && !keys {
			v.add(p, "missing required key \"key\" or \"keys\" for cache action restore")
		}
	}
}

// checkData: one of file and value, except for the get operation.
func checkData(v *validator, p path, step map[string]any) {
	_, file := step["file"]
	_, value := step["value"]
	switch {
	case file && value:
		v.add(p.key("value"), "give either file or value, not both")
	case !file && !value && step["operation"] != "get":
		v.add(p, "missing required key \"file\" or \"value\" for tool data")
	}
}
