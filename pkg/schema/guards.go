package schema

import (
	"fmt"
	"math/bits"
	"strings"
	"unicode"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Guards against operations whose output is far larger than their inputs
// and that run inside one interpreter step, where neither the step limit
// nor the watchdog can stop them ("x" * 10**9, [0] * 10**9,
// s.replace("x", s), sep.join(...), str() of an exponentially shared list,
// squaring a huge integer). rewriteExpr routes `*` and the amplifying string
// methods through these built-ins, and sandboxBuiltins wraps str, repr,
// print and fail.
const (
	mulFunc    = "__kk_mul__"
	methodFunc = "__kk_method__"
	// maxStringBytes bounds a string produced by one operation.
	maxStringBytes = 64 << 20
	// maxIntBits bounds the size of a product of integers.
	maxIntBits = 1 << 20
	// maxReprDepth is where size estimates stop descending (cycles).
	maxReprDepth = 100
)

// guardedMethods are the string methods rewritten to methodFunc.
var guardedMethods = map[string]bool{
	"replace": true, "join": true, "format": true,
	"split": true, "rsplit": true, "splitlines": true,
}

// reprFuncs are the universe built-ins that render arbitrary values.
var reprFuncs = [...]string{"str", "repr", "print", "fail"}

// mulBuiltin is `x * y` with its result size checked first.
func mulBuiltin(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 2 || len(kwargs) != 0 {
		return nil, fmt.Errorf("%s: want 2 arguments", mulFunc)
	}
	if err := checkMul(args[0], args[1]); err != nil {
		return nil, err
	}
	return starlark.Binary(syntax.STAR, args[0], args[1])
}

func checkMul(x, y starlark.Value) error {
	xi, xInt := x.(starlark.Int)
	yi, yInt := y.(starlark.Int)
	switch {
	case xInt && yInt:
		if intBits(xi)+intBits(yi) > maxIntBits {
			return fmt.Errorf("product of integers exceeds the sandbox limit of %d bits", maxIntBits)
		}
		return nil
	case xInt:
		return checkRepeat(y, xi)
	case yInt:
		return checkRepeat(x, yi)
	}
	return nil
}

// checkRepeat bounds seq * n.
func checkRepeat(seq starlark.Value, n starlark.Int) error {
	count, ok := n.Int64()
	if !ok || count <= 0 {
		return nil // starlark reports the error or returns an empty value
	}
	switch seq := seq.(type) {
	case starlark.String, starlark.Bytes:
		if size := float64(starlark.Len(seq)) * float64(count); size > maxStringBytes {
			return fmt.Errorf("repetition makes %.0f bytes, over the sandbox limit of %d", size, maxStringBytes)
		}
	case *starlark.List, starlark.Tuple:
		if size := float64(starlark.Len(seq)) * float64(count); size > maxElems {
			return fmt.Errorf("repetition makes %.0f elements, over the sandbox limit of %d", size, maxElems)
		}
	}
	return nil
}

func intBits(i starlark.Int) int {
	if v, ok := i.Int64(); ok {
		if v < 0 {
			v = -v
		}
		return bits.Len64(uint64(v))
	}
	return i.BigInt().BitLen()
}

// methodBuiltin is recv.name(args...), with string methods' output checked.
func methodBuiltin(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) < 2 {
		return nil, fmt.Errorf("%s: want a receiver and a name", methodFunc)
	}
	recv := args[0]
	name, _ := starlark.AsString(args[1])
	var m starlark.Value
	if ha, ok := recv.(starlark.HasAttrs); ok {
		var err error
		if m, err = ha.Attr(name); err != nil {
			return nil, err
		}
	}
	if m == nil {
		return nil, fmt.Errorf("%s has no .%s field or method", recv.Type(), name)
	}
	if s, ok := recv.(starlark.String); ok {
		if err := checkStringMethod(string(s), name, args[2:], kwargs); err != nil {
			return nil, err
		}
	}
	return starlark.Call(th, m, args[2:], kwargs)
}

// checkStringMethod estimates the output of s.name(args) and refuses it when
// too large. Malformed calls pass through to get the method's own error.
func checkStringMethod(s, name string, args starlark.Tuple, kwargs []starlark.Tuple) error {
	switch name {
	case "replace":
		return checkReplace(s, args)
	case "join":
		return checkJoin(s, args)
	case "format":
		biggest := 0
		for _, a := range args {
			biggest = max(biggest, reprSize(a))
		}
		for _, kv := range kwargs {
			biggest = max(biggest, reprSize(kv[1]))
		}
		if size := float64(len(s)) + float64(strings.Count(s, "{"))*float64(biggest); size > maxStringBytes {
			return fmt.Errorf("format: result of about %.0f bytes is over the sandbox limit of %d", size, maxStringBytes)
		}
	case "split", "rsplit", "splitlines":
		if n := splitCount(s, name, args); n > maxElems {
			return fmt.Errorf("%s: %d parts exceed the sandbox limit of %d", name, n, maxElems)
		}
	}
	return nil
}

func checkReplace(s string, args starlark.Tuple) error {
	if len(args) < 2 {
		return nil
	}
	old, ok1 := starlark.AsString(args[0])
	repl, ok2 := starlark.AsString(args[1])
	if !ok1 || !ok2 || len(repl) <= len(old) {
		return nil
	}
	n := strings.Count(s, old)
	if len(args) > 2 {
		if c, err := starlark.AsInt32(args[2]); err == nil && c >= 0 && c < n {
			n = c
		}
	}
	if size := float64(len(s)) + float64(n)*float64(len(repl)-len(old)); size > maxStringBytes {
		return fmt.Errorf("replace: result of %.0f bytes is over the sandbox limit of %d", size, maxStringBytes)
	}
	return nil
}

func checkJoin(sep string, args starlark.Tuple) error {
	if len(args) != 1 {
		return nil
	}
	it, ok := args[0].(starlark.Iterable)
	n := starlark.Len(args[0])
	if !ok || n < 0 {
		return nil
	}
	if n > maxElems {
		return fmt.Errorf("join: %d elements exceed the sandbox limit of %d", n, maxElems)
	}
	size := float64(len(sep)) * float64(max(n-1, 0))
	iter := it.Iterate()
	defer iter.Done()
	var x starlark.Value
	for iter.Next(&x) {
		if s, ok := x.(starlark.String); ok {
			size += float64(len(s))
		}
	}
	if size > maxStringBytes {
		return fmt.Errorf("join: result of %.0f bytes is over the sandbox limit of %d", size, maxStringBytes)
	}
	return nil
}

// splitCount counts (an upper bound of) the parts a split would return.
func splitCount(s, name string, args starlark.Tuple) int {
	if name == "splitlines" {
		return strings.Count(s, "\n") + strings.Count(s, "\r") + 1
	}
	n := 0
	if len(args) > 0 && args[0] != starlark.None {
		sep, ok := starlark.AsString(args[0])
		if !ok || sep == "" {
			return 0
		}
		n = strings.Count(s, sep) + 1
	} else {
		n = countFields(s)
	}
	if len(args) > 1 {
		if m, err := starlark.AsInt32(args[1]); err == nil && m >= 0 && m+1 < n {
			n = m + 1
		}
	}
	return n
}

// reprWrapped returns the universe built-in name, refusing arguments whose
// string form would be too large.
func reprWrapped(name string) *starlark.Builtin {
	orig := starlark.Universe[name].(*starlark.Builtin)
	return starlark.NewBuiltin(name, func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		total := 0
		for _, a := range args {
			total += reprSize(a)
		}
		if total > maxStringBytes {
			return nil, fmt.Errorf("%s: value too large to convert to a string (over %d bytes)", name, maxStringBytes)
		}
		return orig.CallInternal(th, args, kwargs)
	})
}

// reprSize estimates the length of v's string form, stopping once past
// maxStringBytes, so that exponentially shared lists are measured cheaply.
func reprSize(v starlark.Value) int {
	budget := maxStringBytes + 1
	sizeOf(v, 0, &budget)
	return maxStringBytes + 1 - budget
}

func sizeOf(v starlark.Value, depth int, budget *int) {
	if *budget <= 0 {
		return
	}
	if depth > maxReprDepth {
		*budget -= 8
		return
	}
	switch v := v.(type) {
	case starlark.String:
		*budget -= len(v) + 2
	case starlark.Bytes:
		*budget -= len(v) + 3
	case starlark.Int:
		*budget -= intBits(v)/3 + 2
	case starlark.Indexable: // list, tuple
		*budget -= 2
		for i := 0; i < v.Len() && *budget > 0; i++ {
			*budget -= 2
			sizeOf(v.Index(i), depth+1, budget)
		}
	case starlark.IterableMapping: // dict, ctx objects
		*budget -= 2
		for _, kv := range v.Items() {
			if *budget <= 0 {
				return
			}
			*budget -= 4
			sizeOf(kv[0], depth+1, budget)
			sizeOf(kv[1], depth+1, budget)
		}
	case *starlark.Set:
		*budget -= 5
		iter := v.Iterate()
		defer iter.Done()
		var x starlark.Value
		for *budget > 0 && iter.Next(&x) {
			*budget -= 2
			sizeOf(x, depth+1, budget)
		}
	default:
		*budget -= 24
	}
}

// countFields counts the whitespace-separated fields of s without
// allocating them.
func countFields(s string) int {
	n, inField := 0, false
	for _, r := range s {
		space := unicode.IsSpace(r)
		if !space && !inField {
			n++
		}
		inField = !space
	}
	return n
}
