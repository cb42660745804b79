// Package jsonpatch implements JSON Pointer (RFC 6901) and JSON Patch
// (RFC 6902) on decoded JSON values (nil, bool, json.Number or float64,
// string, []any, map[string]any).
//
// Documents are modified copy-on-write: Apply never changes its input, so a
// failing patch leaves the original document untouched, which is what makes
// a patch atomic.
package jsonpatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// ErrPatch is wrapped by every error about a pointer or a patch.
var ErrPatch = errors.New("json patch")

func errorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrPatch}, args...)...)
}

// Decode parses a JSON document keeping numbers exact (json.Number).
func Decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode json: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode json: unexpected data after the document")
	}
	return v, nil
}

// ParsePointer splits a JSON Pointer into its unescaped reference tokens.
// "" is the whole document.
func ParsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if !strings.HasPrefix(p, "/") {
		return nil, errorf("pointer %q must be empty or start with '/'", p)
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		for j := 0; j < len(s); j++ {
			if s[j] == '~' && (j+1 >= len(s) || (s[j+1] != '0' && s[j+1] != '1')) {
				return nil, errorf("pointer %q: '~' must be followed by 0 or 1", p)
			}
		}
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

// arrayIndex parses a reference token as an index of an array of length n;
// "-" (allowed when end is set) is n.
func arrayIndex(tok string, n int, end bool) (int, error) {
	if tok == "-" && end {
		return n, nil
	}
	if tok == "" || (len(tok) > 1 && tok[0] == '0') || strings.TrimLeft(tok, "0123456789") != "" {
		return 0, errorf("%q is not an array index", tok)
	}
	i, err := strconv.Atoi(tok)
	if err != nil {
		return 0, errorf("%q is not an array index", tok)
	}
	max := n - 1
	if end {
		max = n
	}
	if i > max {
		return 0, errorf("index %d is out of range (array of %d)", i, n)
	}
	return i, nil
}

// Get returns the value the pointer refers to.
func Get(doc any, pointer string) (any, error) {
	toks, err := ParsePointer(pointer)
	if err != nil {
		return nil, err
	}
	cur := doc
	for i, tok := range toks {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, errorf("%q: no member %q", pointer, strings.Join(toks[:i+1], "/"))
			}
			cur = v
		case []any:
			idx, err := arrayIndex(tok, len(c), false)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", pointer, err)
			}
			cur = c[idx]
		default:
			return nil, errorf("%q: %q is not an object or array", pointer, "/"+strings.Join(toks[:i], "/"))
		}
	}
	return cur, nil
}

// op is what to do at the target of a pointer.
type op int

const (
	opAdd     op = iota // RFC add: insert into arrays, set members
	opReplace           // the target must exist
	opRemove            // the target must exist
	opSet               // add, creating missing parent objects
)

// update returns a copy of doc with the change made at toks; the
// containers along the path are copied, nothing else.
func update(doc any, toks []string, o op, v any) (any, error) {
	if len(toks) == 0 {
		if o == opRemove {
			return nil, errorf("cannot remove the whole document")
		}
		return v, nil
	}
	tok, rest := toks[0], toks[1:]
	switch c := doc.(type) {
	case map[string]any:
		child, ok := c[tok]
		out := make(map[string]any, len(c)+1)
		for k, x := range c {
			out[k] = x
		}
		if len(rest) == 0 {
			switch {
			case o == opRemove && !ok, o == opReplace && !ok:
				return nil, errorf("member %q does not exist", tok)
			case o == opRemove:
				delete(out, tok)
			default:
				out[tok] = v
			}
			return out, nil
		}
		if !ok {
			if o != opSet {
				return nil, errorf("member %q does not exist", tok)
			}
			child = map[string]any{}
		}
		nc, err := update(child, rest, o, v)
		if err != nil {
			return nil, err
		}
		out[tok] = nc
		return out, nil
	case []any:
		last := len(rest) == 0
		idx, err := arrayIndex(tok, len(c), last && (o == opAdd || o == opSet))
		if err != nil {
			return nil, err
		}
		if last {
			switch o {
			case opAdd, opSet:
				out := make([]any, 0, len(c)+1)
				out = append(append(append(out, c[:idx]...), v), c[idx:]...)
				return out, nil
			case opRemove:
				out := make([]any, 0, len(c)-1)
				return append(append(out, c[:idx]...), c[idx+1:]...), nil
			default:
				out := append([]any(nil), c...)
				out[idx] = v
				return out, nil
			}
		}
		nc, err := update(c[idx], rest, o, v)
		if err != nil {
			return nil, err
		}
		out := append([]any(nil), c...)
		out[idx] = nc
		return out, nil
	case nil:
		if o == opSet {
			return update(map[string]any{}, toks, o, v)
		}
	}
	if o == opSet {
		return nil, errorf("cannot set member %q inside a %s", tok, kind(doc))
	}
	return nil, errorf("cannot reach %q inside a %s", tok, kind(doc))
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "number"
}

// Set returns a copy of doc with v at the pointer, creating missing parent
// objects (a null parent becomes an object). "" replaces the whole document.
func Set(doc any, pointer string, v any) (any, error) {
	toks, err := ParsePointer(pointer)
	if err != nil {
		return nil, err
	}
	out, err := update(doc, toks, opSet, v)
	if err != nil {
		return nil, fmt.Errorf("set %q: %w", pointer, err)
	}
	return out, nil
}

// Operation is one operation of a JSON Patch.
type Operation struct {
	Op    string           `json:"op"`
	Path  *string          `json:"path"`
	From  *string          `json:"from,omitempty"`
	Value *json.RawMessage `json:"value,omitempty"`
}

// ParsePatch decodes a JSON Patch document (an array of operations).
func ParsePatch(data []byte) ([]Operation, error) {
	var ops []Operation
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ops); err != nil {
		return nil, errorf("a patch is a JSON array of operations {op, path, value|from}: %v", err)
	}
	for i, o := range ops {
		if o.Path == nil {
			return nil, errorf("operation %d (%s) has no path", i, o.Op)
		}
		switch o.Op {
		case "add", "replace", "test":
			if o.Value == nil {
				return nil, errorf("operation %d (%s) has no value", i, o.Op)
			}
		case "move", "copy":
			if o.From == nil {
				return nil, errorf("operation %d (%s) has no from", i, o.Op)
			}
		case "remove":
		default:
			return nil, errorf("operation %d: unknown op %q: use add, remove, replace, move, copy or test", i, o.Op)
		}
	}
	return ops, nil
}

// Apply applies the patch to doc and returns the new document; doc is not
// modified, also when an operation fails (then nothing is applied).
func Apply(doc any, patch []Operation) (any, error) {
	for i, o := range patch {
		var err error
		doc, err = applyOne(doc, o)
		if err != nil {
			return nil, fmt.Errorf("operation %d (%s %s): %w", i, o.Op, *o.Path, err)
		}
	}
	return doc, nil
}

func applyOne(doc any, o Operation) (any, error) {
	path, err := ParsePointer(*o.Path)
	if err != nil {
		return nil, err
	}
	value := func() (any, error) { return Decode(*o.Value) }
	switch o.Op {
	case "add", "replace":
		v, err := value()
		if err != nil {
			return nil, err
		}
		mode := opAdd
		if o.Op == "replace" {
			mode = opReplace
		}
		return update(doc, path, mode, v)
	case "remove":
		return update(doc, path, opRemove, nil)
	case "test":
		v, err := value()
		if err != nil {
			return nil, err
		}
		got, err := Get(doc, *o.Path)
		if err != nil {
			return nil, err
		}
		if !Equal(got, v) {
			return nil, errorf("test failed: the value differs")
		}
		return doc, nil
	case "move", "copy":
		from, err := ParsePointer(*o.From)
		if err != nil {
			return nil, err
		}
		v, err := Get(doc, *o.From)
		if err != nil {
			return nil, err
		}
		if o.Op == "move" {
			if *o.Path == *o.From {
				return doc, nil
			}
			if strings.HasPrefix(*o.Path, *o.From+"/") {
				return nil, errorf("cannot move %q into its own child %q", *o.From, *o.Path)
			}
			if doc, err = update(doc, from, opRemove, nil); err != nil {
				return nil, err
			}
		}
		return update(doc, path, opAdd, v)
	}
	return nil, errorf("unknown op %q", o.Op)
}

// Equal compares two decoded JSON values; numbers compare by value.
func Equal(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !Equal(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number, float64, int:
		p, ok1 := number(a)
		q, ok2 := number(b)
		return ok1 && ok2 && p.Cmp(q) == 0
	}
	return a == b
}

func number(v any) (*big.Float, bool) {
	var s string
	switch n := v.(type) {
	case json.Number:
		s = n.String()
	case float64:
		return big.NewFloat(n), true
	case int:
		return new(big.Float).SetInt64(int64(n)), true
	default:
		return nil, false
	}
	f, _, err := big.ParseFloat(s, 10, 256, big.ToNearestEven)
	return f, err == nil
}
