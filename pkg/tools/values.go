package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/executor"
)

// ValuesCollect is Kraken's `values_collect` tool: each listed JSON file
// becomes one test result carrying metric values. Parameters:
//
//	files  list of {name: file path, namespace: test name (default: the
//	       file name)} (required)
//	cwd    directory the files are relative to (default: the workspace)
//
// A file holds an object of metrics: a number, or an object with value and
// optionally iterations, median, min, max, stddev. A missing or unreadable
// file gives a result with status error (the step then fails); other keys
// are ignored with a note in the log.
type ValuesCollect struct{}

type valuesFile struct{ name, namespace string }

func parseValuesFiles(f map[string]any) ([]valuesFile, error) {
	v, ok := f["files"]
	if !ok || v == nil {
		return nil, errors.New("files is required: a list of {name, namespace}")
	}
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("files: want a non-empty list of {name, namespace}, got %T", v)
	}
	var out []valuesFile
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("files[%d]: want {name, namespace}, got %T", i, e)
		}
		name, _, err := String(m, "name")
		if err != nil || name == "" {
			return nil, fmt.Errorf("files[%d].name: the file's path is required", i)
		}
		ns, _, err := String(m, "namespace")
		if err != nil {
			return nil, fmt.Errorf("files[%d]: %w", i, err)
		}
		for k := range m {
			if k != "name" && k != "namespace" {
				return nil, fmt.Errorf("files[%d]: unknown key %q (want name and namespace)", i, k)
			}
		}
		out = append(out, valuesFile{name, ns})
	}
	return out, nil
}

// Run reads the files.
func (ValuesCollect) Run(ctx context.Context, env executor.Env, st Step) Result {
	const tool = "values_collect"
	files, err := parseValuesFiles(st.Fields)
	if err != nil {
		return badParams(tool, err)
	}
	if err := st.needServices(tool); err != nil {
		return stepError(ctx, tool, err)
	}
	ws := NewWorkspace(env)
	dir, err := workspaceDirs(ws, st.Fields)
	if err != nil {
		return badParams(tool, err)
	}
	rep := startReporter(ctx, st.Services)
	for _, vf := range files {
		res := api.TestResult{Name: vf.namespace, Status: api.TestPassed}
		if res.Name == "" {
			res.Name = vf.name
		}
		values, err := readValues(ws, dir, vf.name, st)
		if err != nil {
			res.Status, res.Message = api.TestError, err.Error()
			fmt.Fprintf(st.Output, "%s: %s: %v\n", tool, vf.name, err)
		} else {
			res.Values = values
			fmt.Fprintf(st.Output, "%s: %s: %d values\n", tool, res.Name, len(values))
		}
		rep.test(res)
	}
	return testsResult(ctx, tool, st, rep, nil, nil)
}

func readValues(ws Workspace, dir, name string, st Step) (map[string]api.TestValue, error) {
	p, err := ws.Path(dir, "files.name", name)
	if err != nil {
		return nil, err
	}
	f, err := ws.Open(p)
	if err != nil {
		return nil, fmt.Errorf("missing file: %w", err)
	}
	defer f.Close()
	var doc map[string]json.RawMessage
	if err := json.NewDecoder(io.LimitReader(f, maxDataFile)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("cannot parse the file: want a JSON object of metrics: %w", err)
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]api.TestValue{}
	for _, k := range keys {
		var num float64
		if err := json.Unmarshal(doc[k], &num); err == nil && !math.IsNaN(num) && !math.IsInf(num, 0) {
			out[k] = api.TestValue{Value: num}
			continue
		}
		var tv api.TestValue
		var probe map[string]json.RawMessage
		if json.Unmarshal(doc[k], &probe) == nil && probe["value"] != nil && json.Unmarshal(doc[k], &tv) == nil {
			out[k] = tv
			continue
		}
		fmt.Fprintf(st.Output, "values_collect: %s: %s is not a number nor {value, ...}; ignored\n", name, k)
	}
	return out, nil
}
