package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
)

// maxDataFile bounds the file a data step sends.
const maxDataFile = 16 << 20

// Data is Kraken's `data` tool: it changes or reads the JSON document of a
// data scope in kkd (visible to schemas as ctx.flow.data, ctx.branch.data...).
// Parameters:
//
//	operation     set (default), jq, jsonpatch or get
//	value         the JSON value to set, the jq program, or the JSON patch
//	file          a file in the workspace holding it instead (for get: where
//	              to write the value read)
//	json_pointer  where set writes and what get reads (default "/")
//	scope         flow (default), branch, branch-ci, branch-dev or project
//	cwd           directory file is relative to (default: the workspace)
//
// kkd applies the operation atomically; the step prints the resulting value
// for get.
type Data struct{}

// Run applies the operation.
func (Data) Run(ctx context.Context, env executor.Env, st Step) Result {
	const tool = "data"
	f := st.Fields
	var errs []error
	op, _, err := String(f, "operation")
	errs = append(errs, err)
	if op == "" {
		op = api.DataSet
	}
	switch op {
	case api.DataSet, api.DataJQ, api.DataJSONPatch, api.DataGet:
	default:
		errs = append(errs, fmt.Errorf("operation: want set, jq, jsonpatch or get, got %q", op))
	}
	file, hasFile, err := String(f, "file")
	errs = append(errs, err)
	value, hasValue := f["value"]
	hasValue = hasValue && value != nil
	pointer, _, err := String(f, "json_pointer")
	errs = append(errs, err)
	if pointer != "" && pointer[0] != '/' {
		errs = append(errs, fmt.Errorf("json_pointer %q: want a JSON pointer starting with /", pointer))
	}
	scope, _, err := String(f, "scope")
	errs = append(errs, err)
	if scope == "" {
		scope = api.ScopeFlow
	}
	switch scope {
	case api.ScopeFlow, api.ScopeBranch, api.ScopeBranchCI, api.ScopeBranchDev, api.ScopeProject:
	default:
		errs = append(errs, fmt.Errorf("scope: want flow, branch, branch-ci, branch-dev or project, got %q", scope))
	}
	if op != api.DataGet {
		switch {
		case hasFile && hasValue:
			errs = append(errs, errors.New("give either file or value, not both"))
		case !hasFile && !hasValue:
			errs = append(errs, fmt.Errorf("value or file is required for operation %s", op))
		}
	} else if hasValue {
		errs = append(errs, errors.New("value makes no sense for get; file names where to write the value read"))
	}
	if err := errors.Join(errs...); err != nil {
		return badParams(tool, err)
	}
	if err := st.needServices(tool); err != nil {
		return stepError(ctx, tool, err)
	}
	ws := NewWorkspace(env)
	var filePath string
	if hasFile {
		dir, err := workspaceDirs(ws, f)
		if err == nil {
			filePath, err = ws.Path(dir, "file", file)
		}
		if err != nil {
			return badParams(tool, err)
		}
	}

	dop := api.DataOp{Scope: scope, Op: op, JSONPointer: pointer}
	if op != api.DataGet {
		var raw []byte
		if hasFile {
			fh, err := ws.Open(filePath)
			if err != nil {
				return stepFailed(tool, fmt.Sprintf("read file: %v", err))
			}
			raw, err = io.ReadAll(io.LimitReader(fh, maxDataFile+1))
			fh.Close()
			if err != nil {
				return stepFailed(tool, fmt.Sprintf("read file: %v", err))
			}
			if len(raw) > maxDataFile {
				return stepFailed(tool, fmt.Sprintf("file %s is larger than %d bytes", file, maxDataFile))
			}
		}
		switch op {
		case api.DataJQ:
			if hasFile {
				dop.Expr = string(raw)
			} else if s, ok := value.(string); ok {
				dop.Expr = s
			} else {
				return badParams(tool, fmt.Errorf("value: want a jq program (a string) for operation jq, got %T", value))
			}
		default:
			if !hasFile {
				if raw, err = json.Marshal(value); err != nil {
					return badParams(tool, fmt.Errorf("value: %w", err))
				}
			} else if !json.Valid(raw) {
				return stepFailed(tool, fmt.Sprintf("file %s does not hold valid JSON", file))
			}
			if op == api.DataJSONPatch && !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
				return badParams(tool, errors.New("a JSON patch is a list of operations (RFC 6902)"))
			}
			dop.Value = raw
		}
	}
	val, err := st.Services.Data(ctx, dop)
	if err != nil {
		return stepError(ctx, tool, err)
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, val.Value, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(val.Value)
	}
	if op == api.DataGet {
		fmt.Fprintf(st.Output, "%s\n", pretty.Bytes())
		if hasFile {
			err := ws.WriteAtomic(filePath, 0o644, func(f *os.File) error {
				_, err := f.Write(append(pretty.Bytes(), '\n'))
				return err
			})
			if err != nil {
				return stepError(ctx, tool, err)
			}
		}
		return Result{Status: ci.StepOK, Message: "read " + scope + " data"}
	}
	fmt.Fprintf(st.Output, "data: %s on %s data; it is now:\n%s\n", op, scope, pretty.Bytes())
	return Result{Status: ci.StepOK, Message: op + " on " + scope + " data"}
}
