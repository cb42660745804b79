package tools

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Field readers for step parameters. Step fields come from JSON, so numbers
// are float64 (or json.Number); interpolation may turn any value into a
// string, so numeric strings and "true"/"false" are accepted too. A missing
// key or a null value counts as absent.

// String returns fields[key] as a string; ok is false when it is absent.
func String(fields map[string]any, key string) (s string, ok bool, err error) {
	v, present := fields[key]
	if !present || v == nil {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", false, fmt.Errorf("%s: want a string, got %T", key, v)
	}
	return s, true, nil
}

// Int returns fields[key] as an integer, or def when it is absent.
func Int(fields map[string]any, key string, def int) (int, error) {
	f, ok, err := number(fields, key)
	if err != nil || !ok {
		return def, err
	}
	if f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return def, fmt.Errorf("%s: want an integer, got %v", key, f)
	}
	return int(f), nil
}

// Seconds returns fields[key], a number of seconds, as a duration; ok is false
// when it is absent. Negative values are an error.
func Seconds(fields map[string]any, key string) (d time.Duration, ok bool, err error) {
	f, ok, err := number(fields, key)
	if err != nil || !ok {
		return 0, false, err
	}
	if f < 0 || f > math.MaxInt64/float64(time.Second) {
		return 0, false, fmt.Errorf("%s: want a number of seconds >= 0, got %v", key, f)
	}
	return time.Duration(f * float64(time.Second)), true, nil
}

// Bool returns fields[key] as a bool, or def when it is absent.
func Bool(fields map[string]any, key string, def bool) (bool, error) {
	v, present := fields[key]
	if !present || v == nil {
		return def, nil
	}
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		if b == "" {
			return def, nil
		}
		p, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(b)))
		if err != nil {
			return def, fmt.Errorf("%s: want true or false, got %q", key, b)
		}
		return p, nil
	}
	return def, fmt.Errorf("%s: want true or false, got %T", key, v)
}

// StringMap returns fields[key], a dict, with its values stringified
// (numbers without exponent, booleans as true/false, null as "").
func StringMap(fields map[string]any, key string) (map[string]string, error) {
	v, present := fields[key]
	if !present || v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		if sm, ok := v.(map[string]string); ok {
			return sm, nil
		}
		return nil, fmt.Errorf("%s: want a dict, got %T", key, v)
	}
	out := make(map[string]string, len(m))
	for k, val := range m {
		out[k] = Stringify(val)
	}
	return out, nil
}

// Stringify renders a JSON value as an environment variable value.
func Stringify(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case json.Number:
		return x.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// number reads a numeric field given as a number or a numeric string.
func number(fields map[string]any, key string) (f float64, ok bool, err error) {
	v, present := fields[key]
	if !present || v == nil {
		return 0, false, nil
	}
	switch x := v.(type) {
	case float64:
		f = x
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case json.Number:
		f, err = x.Float64()
	case string:
		if strings.TrimSpace(x) == "" {
			return 0, false, nil
		}
		f, err = strconv.ParseFloat(strings.TrimSpace(x), 64)
	default:
		return 0, false, fmt.Errorf("%s: want a number, got %T", key, v)
	}
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, fmt.Errorf("%s: want a number, got %v", key, v)
	}
	return f, true, nil
}
