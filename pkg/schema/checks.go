package schema

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// validator collects every issue of a stage dict (not just the first).
type validator struct {
	issues []issue
	vars   func() map[string]any // lazily built Vars, for #{...} in integer fields
}

func (v *validator) add(p path, format string, args ...any) {
	v.issues = append(v.issues, issue{path: p, msg: fmt.Sprintf(format, args...)})
}

// typeName names the type of a converted value the way stage authors
// (Python programmers) know it.
func typeName(x any) string {
	switch x.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "string"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	}
	return fmt.Sprintf("%T", x)
}

// describe renders a value briefly for messages: its type and a short form.
func describe(x any) string {
	switch x := x.(type) {
	case nil:
		return "None"
	case string:
		return "string " + strconv.Quote(short(x))
	case int64, float64, bool:
		return fmt.Sprintf("%s %v", typeName(x), x)
	}
	return "a " + typeName(x)
}

// short truncates s for messages.
func short(s string) string {
	const limit = 60
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}

// isInterp reports whether x is a string with a #{...} expression, accepted
// wherever a scalar is expected because it is interpolated later.
func isInterp(x any) bool {
	s, ok := x.(string)
	return ok && strings.Contains(s, "#{")
}

func (v *validator) dict(p path, x any) (map[string]any, bool) {
	m, ok := x.(map[string]any)
	if !ok {
		v.add(p, "expected a dict, got %s", describe(x))
	}
	return m, ok
}

func (v *validator) list(p path, x any) ([]any, bool) {
	l, ok := x.([]any)
	if !ok {
		v.add(p, "expected a list, got %s", describe(x))
	}
	return l, ok
}

func (v *validator) str(p path, x any) (string, bool) {
	s, ok := x.(string)
	if !ok {
		v.add(p, "expected a string, got %s", describe(x))
	}
	return s, ok
}

func (v *validator) boolean(p path, x any) (bool, bool) {
	b, ok := x.(bool)
	if !ok {
		v.add(p, "expected a bool (True or False), got %s", describe(x))
	}
	return b, ok
}

// integer checks an int >= minimum. Integral floats are accepted (JSON
// Schema's "integer" does). It returns ok=false after reporting an issue.
func (v *validator) integer(p path, x any, minimum int64) (int64, bool) {
	var i int64
	switch x := x.(type) {
	case int64:
		i = x
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			v.add(p, "expected an integer, got %s", describe(x))
			return 0, false
		}
		i = int64(x)
	default:
		v.add(p, "expected an integer, got %s", describe(x))
		return 0, false
	}
	if i < minimum {
		v.add(p, "must be at least %d, got %d", minimum, i)
		return 0, false
	}
	return i, true
}

// intOrInterp checks an integer field of a step: an int >= minimum or a
// string with #{...}.
func (v *validator) intOrInterp(p path, x any, minimum int64) {
	if isInterp(x) {
		return
	}
	v.integer(p, x, minimum)
}

// intField checks an integer field stored in a struct (job or run timeout).
// A #{...} string is interpolated now with the evaluation's context.
func (v *validator) intField(p path, x any, minimum int64) (int, bool) {
	if s, ok := x.(string); ok && isInterp(x) {
		out, err := Interpolate(s, v.vars())
		if err != nil {
			v.add(p, "%v", err)
			return 0, false
		}
		n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			v.add(p, "expected an integer, %q interpolates to %q", short(s), short(out))
			return 0, false
		}
		x = n
	}
	i, ok := v.integer(p, x, minimum)
	if ok && i > math.MaxInt32 {
		v.add(p, "%d is too large", i)
		return 0, false
	}
	return int(i), ok
}

// strList checks a list of strings.
func (v *validator) strList(p path, x any) ([]string, bool) {
	l, ok := v.list(p, x)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(l))
	for i, e := range l {
		s, ok := v.str(p.index(i), e)
		if ok {
			out = append(out, s)
		}
	}
	return out, len(out) == len(l)
}

// strOrList checks a string or a list of strings.
func (v *validator) strOrList(p path, x any) ([]string, bool) {
	switch x := x.(type) {
	case string:
		return []string{x}, true
	case []any:
		return v.strList(p, x)
	}
	v.add(p, "expected a string or a list of strings, got %s", describe(x))
	return nil, false
}

// strMap checks a dict of string values (env, git_cfg, configs).
func (v *validator) strMap(p path, x any) (map[string]string, bool) {
	m, ok := v.dict(p, x)
	if !ok {
		return nil, false
	}
	out := make(map[string]string, len(m))
	for _, k := range sortedKeys(m) {
		s, ok := m[k].(string)
		if !ok {
			v.add(p.key(k), "expected a string, got %s", describe(m[k]))
			continue
		}
		out[k] = s
	}
	return out, len(out) == len(m)
}

// enum checks a string among allowed values (or a #{...} string when interp).
func (v *validator) enum(p path, x any, allowed []string, interp bool) (string, bool) {
	if interp && isInterp(x) {
		return x.(string), true
	}
	s, ok := v.str(p, x)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if s == a {
			return s, true
		}
	}
	v.add(p, "invalid value %q (allowed: %s)", short(s), strings.Join(allowed, ", "))
	return "", false
}

// unknownKeys reports every key of m not in allowed. what names the object
// for the message, e.g. " for tool shell" or " in triggers".
func (v *validator) unknownKeys(p path, m map[string]any, allowed []string, what string) {
	for _, k := range sortedKeys(m) {
		if contains(allowed, k) {
			continue
		}
		hint := ""
		if s := suggest(k, allowed); s != "" {
			hint = fmt.Sprintf("did you mean %q? ", s)
		}
		v.add(p.key(k), "unknown key %q%s (%sallowed: %s)", short(k), what, hint, strings.Join(allowed, ", "))
	}
}

// required reports a missing key and returns whether it is present.
func (v *validator) required(p path, m map[string]any, key, what string) bool {
	if _, ok := m[key]; ok {
		return true
	}
	v.add(p, "missing required key %q%s", key, what)
	return false
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// suggest returns the candidate closest to s when it is a plausible typo.
func suggest(s string, candidates []string) string {
	best, bestDist := "", len(s)/2+1
	if bestDist > 3 {
		bestDist = 3
	}
	for _, c := range candidates {
		if d := editDistance(s, c); d <= bestDist && (best == "" || d < editDistance(s, best)) {
			best = c
		}
	}
	return best
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
