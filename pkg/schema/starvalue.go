package schema

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"go.starlark.net/starlark"
)

// mapValue exposes a Go map[string]any to Starlark as a read-only dict with
// attribute access (ctx.args.x), indexing (ctx.args["x"]), the dict methods
// get, keys, values and items, `in`, iteration (sorted keys) and len.
//
// A lenient mapValue reads a missing attribute as None, which is what lets
// `ctx.flow.data.targets or ["staging"]` run before any data exists. Children
// of a lenient map are lenient; children stored under one of the lenient keys
// (args, env, data, ...) of a strict map are lenient too.
//
// Children are converted on first access and cached, so large flow data costs
// nothing unless the code reads it. A mapValue belongs to one evaluation (one
// Starlark thread) and is not safe for concurrent use.
type mapValue struct {
	name    string // for error messages: "ctx", "ctx.flow", ...
	typ     string // Starlark type name
	m       map[string]any
	lenient bool
	cache   map[string]starlark.Value
}

var (
	_ starlark.HasAttrs        = (*mapValue)(nil)
	_ starlark.IterableMapping = (*mapValue)(nil)
	_ starlark.Sequence        = (*mapValue)(nil)
	_ starlark.Container       = (*mapValue)(nil)
)

// mapMethods are the dict methods a mapValue offers. Like Python's dict
// subclasses, they take precedence over keys of the same name.
var mapMethods = [...]string{"get", "items", "keys", "values"}

// lenientKey reports whether values under key k of a strict map are lenient.
func lenientKey(k string) bool {
	switch k {
	case "args", "env", "data", "trigger", "secrets", "user_data", "data_ci", "data_dev", "project_data":
		return true
	}
	return false
}

func newMapValue(name string, m map[string]any, lenient bool) *mapValue {
	typ := "dict"
	if name == "ctx" {
		typ = "ctx"
	}
	return &mapValue{name: name, typ: typ, m: m, lenient: lenient}
}

// String renders the map like a Starlark dict, keys sorted.
func (v *mapValue) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range v.sortedKeys() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(starlark.String(k).String())
		b.WriteString(": ")
		b.WriteString(v.child(k).String())
	}
	b.WriteByte('}')
	return b.String()
}

// Type returns "ctx" for the stage context and "dict" otherwise.
func (v *mapValue) Type() string { return v.typ }

// Freeze is a no-op: a mapValue cannot be modified from Starlark.
func (v *mapValue) Freeze() {}

// Truth is false for an empty map, like a dict.
func (v *mapValue) Truth() starlark.Bool { return len(v.m) > 0 }

// Hash fails: like a dict, a mapValue is not hashable.
func (v *mapValue) Hash() (uint32, error) {
	return 0, fmt.Errorf("unhashable type: %s", v.typ)
}

// Len returns the number of keys.
func (v *mapValue) Len() int { return len(v.m) }

// Attr returns a method, the value of key name, or (lenient maps) None.
func (v *mapValue) Attr(name string) (starlark.Value, error) {
	if m := v.method(name); m != nil {
		return m, nil
	}
	if _, ok := v.m[name]; ok {
		return v.child(name), nil
	}
	if v.lenient {
		return starlark.None, nil
	}
	return nil, starlark.NoSuchAttrError(fmt.Sprintf("%s has no field %q (known: %s)",
		v.name, name, strings.Join(v.sortedKeys(), ", ")))
}

// AttrNames lists keys and methods.
func (v *mapValue) AttrNames() []string {
	names := v.sortedKeys()
	names = append(names, mapMethods[:]...)
	sort.Strings(names)
	return names
}

// Has implements `key in m`.
func (v *mapValue) Has(key starlark.Value) (bool, error) {
	k, ok := key.(starlark.String)
	if !ok {
		return false, nil
	}
	_, found := v.m[string(k)]
	return found, nil
}

// Get implements m[key]; a lenient map reads a missing key as None, like a
// missing attribute.
func (v *mapValue) Get(key starlark.Value) (starlark.Value, bool, error) {
	if found, _ := v.Has(key); found {
		return v.child(string(key.(starlark.String))), true, nil
	}
	if v.lenient {
		return starlark.None, true, nil
	}
	return nil, false, nil
}

// Iterate yields the keys in sorted order.
func (v *mapValue) Iterate() starlark.Iterator {
	keys := v.sortedKeys()
	elems := make([]starlark.Value, len(keys))
	for i, k := range keys {
		elems[i] = starlark.String(k)
	}
	return starlark.Tuple(elems).Iterate()
}

// Items returns the key/value pairs in sorted key order.
func (v *mapValue) Items() []starlark.Tuple {
	keys := v.sortedKeys()
	items := make([]starlark.Tuple, len(keys))
	for i, k := range keys {
		items[i] = starlark.Tuple{starlark.String(k), v.child(k)}
	}
	return items
}

func (v *mapValue) sortedKeys() []string {
	keys := make([]string, 0, len(v.m))
	for k := range v.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// child converts (once) and returns the value of key k, which must exist.
func (v *mapValue) child(k string) starlark.Value {
	if c, ok := v.cache[k]; ok {
		return c
	}
	c := toStarlark(v.name+"."+k, v.m[k], v.lenient || lenientKey(k))
	if v.cache == nil {
		v.cache = make(map[string]starlark.Value)
	}
	v.cache[k] = c
	return c
}

// method returns the bound dict method name, or nil.
func (v *mapValue) method(name string) starlark.Value {
	switch name {
	case "get":
		return starlark.NewBuiltin("get", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var key, def starlark.Value = nil, starlark.None
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &key, &def); err != nil {
				return nil, err
			}
			if found, _ := v.Has(key); found {
				return v.child(string(key.(starlark.String))), nil
			}
			return def, nil
		})
	case "keys", "values", "items":
		return starlark.NewBuiltin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
				return nil, err
			}
			items := v.Items()
			out := make([]starlark.Value, len(items))
			for i, it := range items {
				switch name {
				case "keys":
					out[i] = it[0]
				case "values":
					out[i] = it[1]
				default:
					out[i] = it
				}
			}
			return starlark.NewList(out), nil
		})
	}
	return nil
}

// toStarlark converts a Go value (as found in Context, Vars or JSON data) to
// a Starlark value. Maps become lazy mapValues; slices become lists; values of
// unknown types are rendered with fmt. It never fails.
func toStarlark(name string, x any, lenient bool) starlark.Value {
	switch x := x.(type) {
	case nil:
		return starlark.None
	case starlark.Value:
		return x
	case bool:
		return starlark.Bool(x)
	case string:
		return starlark.String(x)
	case int:
		return starlark.MakeInt(x)
	case int64:
		return starlark.MakeInt64(x)
	case int32:
		return starlark.MakeInt64(int64(x))
	case uint64:
		return starlark.MakeUint64(x)
	case float64:
		return starlark.Float(x)
	case float32:
		return starlark.Float(x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return starlark.MakeInt64(i)
		}
		if f, err := x.Float64(); err == nil {
			return starlark.Float(f)
		}
		return starlark.String(x)
	case map[string]any:
		return newMapValue(name, x, lenient)
	case Step:
		return newMapValue(name, x, lenient)
	case []any:
		elems := make([]starlark.Value, len(x))
		for i, e := range x {
			elems[i] = toStarlark(fmt.Sprintf("%s[%d]", name, i), e, lenient)
		}
		return starlark.NewList(elems)
	}
	return reflectToStarlark(name, x, lenient)
}

// reflectToStarlark handles the less common Go types: other maps with string
// keys, slices and arrays, other numbers, and a json.Number-like Stringer.
func reflectToStarlark(name string, x any, lenient bool) starlark.Value {
	rv := reflect.ValueOf(x)
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		m := make(map[string]any, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			m[iter.Key().String()] = iter.Value().Interface()
		}
		return newMapValue(name, m, lenient)
	case reflect.Slice, reflect.Array:
		elems := make([]starlark.Value, rv.Len())
		for i := range elems {
			elems[i] = toStarlark(fmt.Sprintf("%s[%d]", name, i), rv.Index(i).Interface(), lenient)
		}
		return starlark.NewList(elems)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return starlark.MakeInt64(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return starlark.MakeUint64(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return starlark.Float(rv.Float())
	case reflect.Bool:
		return starlark.Bool(rv.Bool())
	case reflect.String:
		return starlark.String(rv.String())
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return starlark.None
		}
		return toStarlark(name, rv.Elem().Interface(), lenient)
	}
	return starlark.String(fmt.Sprint(x))
}
