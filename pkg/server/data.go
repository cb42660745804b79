package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/itchyny/gojq"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/jsonpatch"
	"github.com/kraken-go/kk/pkg/store"
)

// Limits of the data tool.
const (
	maxDataDoc = 1 << 20 // bytes of a scope's JSON document
	jqTimeout  = 2 * time.Second
)

var dataScopes = map[string]bool{api.ScopeFlow: true, api.ScopeBranch: true, api.ScopeBranchCI: true, api.ScopeBranchDev: true, api.ScopeProject: true}

// dataScope returns the store scope of a job's flow, branch or project.
func (s *Server) dataScope(ctx context.Context, j ci.Job, kind string) (store.DataScope, error) {
	if kind == api.ScopeFlow {
		return store.DataScope{Kind: kind, OwnerID: j.FlowID}, nil
	}
	f, err := s.cfg.Store.GetFlow(ctx, j.FlowID)
	if err != nil {
		return store.DataScope{}, err
	}
	if kind != api.ScopeProject {
		return store.DataScope{Kind: kind, OwnerID: f.BranchID}, nil
	}
	b, err := s.cfg.Store.GetBranch(ctx, f.BranchID)
	if err != nil {
		return store.DataScope{}, err
	}
	return store.DataScope{Kind: kind, OwnerID: b.ProjectID}, nil
}

// rootPointer maps the data tool's "/" (the whole document) to RFC 6901's "".
func rootPointer(p string) string {
	if p == "/" {
		return ""
	}
	return p
}

// agentData applies a data tool operation to its scope's document.
func (s *Server) agentData(w http.ResponseWriter, r *http.Request) error {
	var op api.DataOp
	if err := decode(r, &op); err != nil {
		return err
	}
	j, err := s.agentJob(r, op.Attempt)
	if err != nil {
		return err
	}
	if op.Scope == "" {
		op.Scope = api.ScopeFlow
	}
	if !dataScopes[op.Scope] {
		return badRequest("scope %q is unknown: use flow, branch, branch-ci, branch-dev or project", op.Scope)
	}
	if op.Op == "" {
		op.Op = api.DataSet
	}
	ptr := rootPointer(op.JSONPointer)
	if _, err := jsonpatch.ParsePointer(ptr); err != nil {
		return badRequest("json_pointer %q: %v", op.JSONPointer, err)
	}
	apply, err := dataOperation(op, ptr)
	if err != nil {
		return err
	}
	ctx := r.Context()
	scope, err := s.dataScope(ctx, j, op.Scope)
	if err != nil {
		return err
	}
	if op.Op == api.DataGet {
		doc, _, err := s.cfg.Store.GetData(ctx, scope)
		if err != nil {
			return err
		}
		cur, err := decodeDoc(doc)
		if err != nil {
			return err
		}
		v, err := jsonpatch.Get(cur, ptr)
		if err != nil {
			return notFoundf("%s data has no value at %q: %v", op.Scope, op.JSONPointer, err)
		}
		return writeDataValue(w, op.Scope, v)
	}
	out, err := store.UpdateData(ctx, s.cfg.Store, scope, func(doc json.RawMessage) (json.RawMessage, error) {
		cur, err := decodeDoc(doc)
		if err != nil {
			return nil, err
		}
		next, err := apply(ctx, cur)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(next)
		if err != nil {
			return nil, badRequest("the result is not JSON: %v", err)
		}
		if len(b) > maxDataDoc {
			return nil, badRequest("%s data would be %d bytes, over the limit of %d bytes: store less (or big files as artifacts)", op.Scope, len(b), maxDataDoc)
		}
		return b, nil
	})
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("data updated", "job_id", j.ID, "scope", op.Scope, "owner_id", scope.OwnerID, "op", op.Op)
	return writeJSON(w, http.StatusOK, api.DataValue{Scope: op.Scope, Value: out})
}

// decodeDoc decodes a stored document; none is null.
func decodeDoc(doc json.RawMessage) (any, error) {
	if doc == nil {
		return nil, nil
	}
	v, err := jsonpatch.Decode(doc)
	if err != nil {
		return nil, fmt.Errorf("stored data document: %w", err)
	}
	return v, nil
}

func writeDataValue(w http.ResponseWriter, scope string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.DataValue{Scope: scope, Value: b})
}

// dataOperation checks op and returns the change it makes to a document.
func dataOperation(op api.DataOp, ptr string) (func(context.Context, any) (any, error), error) {
	switch op.Op {
	case api.DataGet:
		return nil, nil
	case api.DataSet:
		if len(op.Value) == 0 {
			return nil, badRequest("op set needs a value (any JSON)")
		}
		v, err := jsonpatch.Decode(op.Value)
		if err != nil {
			return nil, badRequest("value: %v", err)
		}
		return func(_ context.Context, cur any) (any, error) {
			out, err := jsonpatch.Set(cur, ptr, v)
			if err != nil {
				return nil, badRequest("set: %v", err)
			}
			return out, nil
		}, nil
	case api.DataJSONPatch:
		if len(op.Value) == 0 {
			return nil, badRequest("op jsonpatch needs a value: an RFC 6902 patch, e.g. [{\"op\": \"add\", \"path\": \"/a\", \"value\": 1}]")
		}
		if ptr != "" {
			return nil, badRequest("op jsonpatch works on the whole document: drop json_pointer and use the paths of the patch")
		}
		patch, err := jsonpatch.ParsePatch(op.Value)
		if err != nil {
			return nil, badRequest("value: %v", err)
		}
		return func(_ context.Context, cur any) (any, error) {
			out, err := jsonpatch.Apply(cur, patch)
			if err != nil {
				return nil, badRequest("jsonpatch: %v", err)
			}
			return out, nil
		}, nil
	case api.DataJQ:
		if op.Expr == "" {
			return nil, badRequest("op jq needs expr, a jq program, e.g. \".count += 1\"")
		}
		if ptr != "" {
			return nil, badRequest("op jq works on the whole document: drop json_pointer and address the part in the program")
		}
		q, err := gojq.Parse(op.Expr)
		if err != nil {
			return nil, badRequest("jq program %q: %v", op.Expr, err)
		}
		code, err := gojq.Compile(q)
		if err != nil {
			return nil, badRequest("jq program %q: %v", op.Expr, err)
		}
		return func(ctx context.Context, cur any) (any, error) { return runJQ(ctx, code, op.Expr, cur) }, nil
	}
	return nil, badRequest("op %q is unknown: use set, get, jq or jsonpatch", op.Op)
}

// runJQ runs a jq program on the document; it must give exactly one value
// within jqTimeout.
func runJQ(ctx context.Context, code *gojq.Code, expr string, cur any) (any, error) {
	// gojq works on plain Go values: numbers as float64.
	in, err := plainJSON(cur)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, jqTimeout)
	defer cancel()
	iter := code.RunWithContext(ctx, in)
	var out []any
	for len(out) < 2 {
		v, ok := iter.Next()
		if !ok {
			break
		}
		if err, ok := v.(error); ok {
			var halt *gojq.HaltError
			if errors.As(err, &halt) && halt.Value() == nil {
				break
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, badRequest("jq program %q ran longer than %s: simplify it", expr, jqTimeout)
			}
			return nil, badRequest("jq program %q: %v", expr, err)
		}
		out = append(out, v)
	}
	if ctx.Err() != nil && len(out) < 2 {
		return nil, badRequest("jq program %q ran longer than %s: simplify it", expr, jqTimeout)
	}
	if len(out) != 1 {
		what := "no value"
		if len(out) > 1 {
			what = "more than one value"
		}
		return nil, badRequest("jq program %q gave %s: it must give exactly one, the new document", expr, what)
	}
	return out[0], nil
}

// plainJSON converts a decoded document to the values gojq takes.
func plainJSON(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	return out, json.Unmarshal(b, &out)
}

// writeScopeData writes a scope's document for the user routes ({} when
// nothing was stored yet).
func (s *Server) writeScopeData(w http.ResponseWriter, r *http.Request, scope store.DataScope) error {
	doc, _, err := s.cfg.Store.GetData(r.Context(), scope)
	if err != nil {
		return err
	}
	if doc == nil {
		doc = json.RawMessage(`{}`)
	}
	return writeJSON(w, http.StatusOK, api.DataValue{Scope: scope.Kind, Value: doc})
}

func (s *Server) flowData(w http.ResponseWriter, r *http.Request) error {
	f, err := s.flowByID(r)
	if err != nil {
		return err
	}
	return s.writeScopeData(w, r, store.DataScope{Kind: api.ScopeFlow, OwnerID: f.ID})
}

func (s *Server) branchData(w http.ResponseWriter, r *http.Request) error {
	b, err := s.branchByID(r)
	if err != nil {
		return err
	}
	scope := r.URL.Query().Get("scope")
	switch scope {
	case "":
		scope = api.ScopeBranch
	case api.ScopeBranch, api.ScopeBranchCI, api.ScopeBranchDev:
	default:
		return badRequest("scope=%q: use branch, branch-ci or branch-dev", scope)
	}
	return s.writeScopeData(w, r, store.DataScope{Kind: scope, OwnerID: b.ID})
}

func (s *Server) projectData(w http.ResponseWriter, r *http.Request) error {
	p, err := s.project(r)
	if err != nil {
		return err
	}
	return s.writeScopeData(w, r, store.DataScope{Kind: api.ScopeProject, OwnerID: p.ID})
}
