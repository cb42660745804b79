package schema

import (
	"fmt"
	"math"

	"go.starlark.net/starlark"
)

// maxDepth bounds the nesting of the returned value (and catches cycles such
// as a list that contains itself).
const maxDepth = 64

// Approximate in-memory costs charged against MaxResultBytes.
const (
	costScalar = 16 // an interface holding a number, bool or None
	costList   = 24
	costDict   = 48
	costEntry  = 16
)

// converter turns the value returned by stage(ctx) into plain Go values:
// dicts with string keys → map[string]any, lists and tuples → []any,
// int → int64, float → float64, bool, None → nil, string. Anything else is
// an issue at its key path. It charges every value against a budget of
// MaxResultBytes (an estimate of the Go memory it builds, larger than the
// JSON) so that a huge or exponentially shared result is refused instead of
// exhausting memory.
type converter struct {
	budget int
	tooBig bool // the budget ran out
	stop   bool // stop converting: too big or too deep
	issues []issue
}

// convertResult converts the stage dict.
func convertResult(d *starlark.Dict) (map[string]any, []issue) {
	c := &converter{budget: MaxResultBytes}
	out := c.value(nil, d, 0)
	if c.tooBig {
		c.issues = append(c.issues, issue{msg: fmt.Sprintf("stage result is larger than %d MiB", MaxResultBytes>>20)})
	}
	if len(c.issues) > 0 {
		return nil, c.issues
	}
	m, _ := out.(map[string]any)
	return m, nil
}

// pnode is a path in reverse, cheap to extend while walking a large value;
// it becomes a path only when an issue is reported.
type pnode struct {
	parent *pnode
	elem   pathElem
}

// path materialises the path, keeping at most its first max elements.
func (n *pnode) path(max int) path {
	var p path
	for ; n != nil; n = n.parent {
		p = append(p, n.elem)
	}
	for i, j := 0, len(p)-1; i < j; i, j = i+1, j-1 {
		p[i], p[j] = p[j], p[i]
	}
	return p[:min(len(p), max)]
}

func (c *converter) charge(n int) bool {
	c.budget -= n
	if c.budget < 0 {
		c.tooBig, c.stop = true, true
	}
	return !c.stop
}

func (c *converter) fail(p *pnode, format string, args ...any) {
	if len(c.issues) < maxProblems {
		c.issues = append(c.issues, issue{path: p.path(maxDepth), msg: fmt.Sprintf(format, args...)})
	}
}

// value converts v, found at path p.
func (c *converter) value(p *pnode, v starlark.Value, depth int) any {
	if c.stop {
		return nil
	}
	if depth > maxDepth {
		c.issues = append(c.issues, issue{path: p.path(8),
			msg: fmt.Sprintf("value is nested more than %d levels deep (does it contain itself?)", maxDepth)})
		c.stop = true
		return nil
	}
	switch v := v.(type) {
	case starlark.NoneType:
		c.charge(costScalar)
		return nil
	case starlark.Bool:
		c.charge(costScalar)
		return bool(v)
	case starlark.Int:
		i, ok := v.Int64()
		if !ok {
			c.fail(p, "integer %s does not fit in 64 bits", short(v.String()))
			return nil
		}
		c.charge(costScalar)
		return i
	case starlark.Float:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			c.fail(p, "%s is not a valid JSON number", v)
			return nil
		}
		c.charge(costScalar)
		return f
	case starlark.String:
		c.charge(costScalar + len(v))
		return string(v)
	case *starlark.List:
		return c.list(p, v, depth)
	case starlark.Tuple:
		return c.list(p, v, depth)
	case *starlark.Dict:
		return c.dict(p, v.Items(), depth)
	case *mapValue:
		return c.dict(p, v.Items(), depth)
	}
	c.fail(p, "a value of type %s cannot be part of a stage (use dicts, lists, strings, numbers, bools or None)", v.Type())
	return nil
}

func (c *converter) list(p *pnode, l starlark.Indexable, depth int) []any {
	n := l.Len()
	if !c.charge(costList + costScalar*n) {
		return nil
	}
	out := make([]any, n)
	for i := range n {
		out[i] = c.value(&pnode{parent: p, elem: pathElem{index: i, isIndex: true}}, l.Index(i), depth+1)
		if c.stop {
			return nil
		}
	}
	return out
}

func (c *converter) dict(p *pnode, items []starlark.Tuple, depth int) map[string]any {
	if !c.charge(costDict + costEntry*len(items)) {
		return nil
	}
	out := make(map[string]any, len(items))
	for _, kv := range items {
		k, ok := kv[0].(starlark.String)
		if !ok {
			c.fail(p, "dict key %s is a %s; keys must be strings", short(kv[0].String()), kv[0].Type())
			continue
		}
		if !c.charge(len(k)) {
			return nil
		}
		out[string(k)] = c.value(&pnode{parent: p, elem: pathElem{key: string(k)}}, kv[1], depth+1)
		if c.stop {
			return nil
		}
	}
	return out
}
