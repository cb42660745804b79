package schema

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
)

// maxExprLen bounds one #{...} expression.
const maxExprLen = 4096

// Interpolate replaces every #{expr} in s by the value of expr, a Starlark
// expression over the names of vars (see Context.Vars). Maps allow attribute
// access, and a missing key reads as None like in Kraken's Jinja:
// `#{args.count}`, `#{flow.seq.own}`, `#{env.X or 'y'}`, `#{KK_FLOW_SEQ}`.
// None renders as "", whole floats without ".0", bools as True/False, lists
// and dicts in Starlark notation. A string without "#{" is returned
// unchanged. An unknown name, a bad expression or an unterminated "#{" is an
// error naming the expression.
func Interpolate(s string, vars map[string]any) (string, error) {
	if !strings.Contains(s, "#{") {
		return s, nil
	}
	return newInterpolator(vars).interpolate(s)
}

// InterpolateValue applies Interpolate to every string inside v (maps, lists
// and slices of any element type, nested), returning a copy of the same
// shape; other values are returned as they are.
func InterpolateValue(v any, vars map[string]any) (any, error) {
	return newInterpolator(vars).value(v)
}

// interpolator evaluates #{...} over one set of vars, converting them to
// Starlark once.
type interpolator struct {
	vars map[string]any
	env  starlark.StringDict
}

func newInterpolator(vars map[string]any) *interpolator {
	return &interpolator{vars: vars}
}

func (in *interpolator) environment() starlark.StringDict {
	if in.env == nil {
		in.env = sandboxBuiltins()
		in.env["true"], in.env["false"], in.env["none"] = starlark.True, starlark.False, starlark.None
		for k, v := range in.vars {
			in.env[k] = toStarlark(k, v, true)
		}
	}
	return in.env
}

func (in *interpolator) interpolate(s string) (string, error) {
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "#{")
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:i])
		rest = rest[i+2:]
		end := exprEnd(rest)
		if end < 0 {
			return "", fmt.Errorf("unterminated #{ in %q", short(s))
		}
		expr := strings.TrimSpace(rest[:end])
		rest = rest[end+1:]
		out, err := in.eval(expr)
		if err != nil {
			return "", err
		}
		b.WriteString(out)
	}
}

// exprEnd returns the index of the '}' closing an expression that starts at
// s[0], skipping nested braces and quoted strings, or -1.
func exprEnd(s string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '{':
			depth++
		case c == '}':
			if depth == 0 {
				return i
			}
			depth--
		}
	}
	return -1
}

func (in *interpolator) eval(expr string) (string, error) {
	if expr == "" {
		return "", fmt.Errorf("empty #{} expression")
	}
	if len(expr) > maxExprLen {
		return "", fmt.Errorf("#{...} expression is longer than %d bytes", maxExprLen)
	}
	v, err := evalExpr("#{}", expr, in.environment())
	if err != nil {
		return "", fmt.Errorf("evaluate #{%s}: %w", short(expr), err)
	}
	return format(v), nil
}

// format renders an interpolated value.
func format(v starlark.Value) string {
	switch v := v.(type) {
	case starlark.NoneType:
		return ""
	case starlark.String:
		return string(v)
	case starlark.Float:
		return strconv.FormatFloat(float64(v), 'f', -1, 64)
	}
	return v.String()
}

// value interpolates the strings inside x, keeping its shape and types.
func (in *interpolator) value(x any) (any, error) {
	switch x := x.(type) {
	case nil:
		return nil, nil
	case string:
		if !strings.Contains(x, "#{") {
			return x, nil
		}
		return in.interpolate(x)
	case map[string]any:
		return in.stringMap(x)
	case Step:
		m, err := in.stringMap(x)
		return Step(m), err
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			v, err := in.value(e)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case bool, int, int64, float64:
		return x, nil
	}
	return in.reflectValue(reflect.ValueOf(x))
}

func (in *interpolator) stringMap(m map[string]any) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[string]any, len(m))
	for k, e := range m {
		v, err := in.value(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

// reflectValue handles typed maps, slices and named string types.
func (in *interpolator) reflectValue(rv reflect.Value) (any, error) {
	switch rv.Kind() {
	case reflect.String:
		s, err := in.value(rv.String())
		if err != nil {
			return nil, err
		}
		return reflect.ValueOf(s).Convert(rv.Type()).Interface(), nil
	case reflect.Slice:
		if rv.IsNil() {
			return rv.Interface(), nil
		}
		out := reflect.MakeSlice(rv.Type(), rv.Len(), rv.Len())
		for i := range rv.Len() {
			if err := in.set(rv.Index(i), func(v reflect.Value) { out.Index(i).Set(v) }, rv.Type().Elem()); err != nil {
				return nil, err
			}
		}
		return out.Interface(), nil
	case reflect.Map:
		if rv.IsNil() {
			return rv.Interface(), nil
		}
		out := reflect.MakeMapWithSize(rv.Type(), rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			k := iter.Key()
			err := in.set(iter.Value(), func(v reflect.Value) { out.SetMapIndex(k, v) }, rv.Type().Elem())
			if err != nil {
				return nil, fmt.Errorf("%v: %w", k.Interface(), err)
			}
		}
		return out.Interface(), nil
	}
	return rv.Interface(), nil
}

// set interpolates element e and stores it with store as type t.
func (in *interpolator) set(e reflect.Value, store func(reflect.Value), t reflect.Type) error {
	if e.Kind() == reflect.Interface && e.IsNil() {
		store(reflect.Zero(t))
		return nil
	}
	v, err := in.value(e.Interface())
	if err != nil {
		return err
	}
	if v == nil {
		store(reflect.Zero(t))
		return nil
	}
	rv := reflect.ValueOf(v)
	if !rv.Type().AssignableTo(t) {
		rv = rv.Convert(t)
	}
	store(rv)
	return nil
}
