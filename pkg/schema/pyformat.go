package schema

import (
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// percentFunc is the predeclared built-in that every `x % y` of stage code is
// rewritten to call (see rewriteFile): Starlark's own string % lacks
// Python's flags, width and precision ("%-10s", "%03d", "%.2f").
const percentFunc = "__kk_percent__"

// percentBuiltin formats like Python when x is a string, and falls back to
// Starlark's % otherwise (ints, floats).
func percentBuiltin(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 2 || len(kwargs) != 0 {
		return nil, fmt.Errorf("%s: want 2 arguments", percentFunc)
	}
	s, ok := args[0].(starlark.String)
	if !ok {
		return starlark.Binary(syntax.PERCENT, args[0], args[1])
	}
	out, err := pyFormat(string(s), args[1])
	if err != nil {
		return nil, err
	}
	return starlark.String(out), nil
}

// spec is one parsed conversion specifier.
type spec struct {
	flags     string
	width     int
	precision int // -1 when absent
	verb      byte
}

// pyFormat implements Python's printf-style `format % values`.
func pyFormat(format string, x starlark.Value) (string, error) {
	var positional []starlark.Value
	if t, ok := x.(starlark.Tuple); ok {
		positional = t
	} else {
		positional = []starlark.Value{x}
	}
	mapping, isMapping := x.(starlark.Mapping)
	if _, isTuple := x.(starlark.Tuple); isTuple {
		isMapping = false
	}
	next := 0
	nextArg := func() (starlark.Value, error) {
		if next >= len(positional) {
			return nil, fmt.Errorf("not enough arguments for format string")
		}
		next++
		return positional[next-1], nil
	}
	usedKey := false
	var b strings.Builder
	for {
		i := strings.IndexByte(format, '%')
		if i < 0 {
			b.WriteString(format)
			break
		}
		b.WriteString(format[:i])
		format = format[i+1:]
		var arg starlark.Value
		if strings.HasPrefix(format, "(") {
			key, rest, err := formatKey(format)
			if err != nil {
				return "", err
			}
			if !isMapping {
				return "", fmt.Errorf("format requires a mapping")
			}
			v, found, _ := mapping.Get(starlark.String(key))
			if !found {
				return "", fmt.Errorf("key not found: %s", key)
			}
			arg, format, usedKey = v, rest, true
		}
		sp, rest, err := parseSpec(format, nextArg)
		if err != nil {
			return "", err
		}
		format = rest
		if sp.verb == '%' {
			b.WriteByte('%')
			continue
		}
		if arg == nil {
			if arg, err = nextArg(); err != nil {
				return "", err
			}
		}
		s, err := sp.format(arg)
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	if next < len(positional) && !usedKey && !(isMapping && next == 0) {
		return "", fmt.Errorf("not all arguments converted during string formatting")
	}
	return b.String(), nil
}

// formatKey parses "(key)" (parentheses may nest) at the start of s.
func formatKey(s string) (key, rest string, err error) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return s[1:i], s[i+1:], nil
			}
		}
	}
	return "", "", fmt.Errorf("incomplete format key")
}

// parseSpec parses flags, width, precision, length and conversion.
func parseSpec(s string, nextArg func() (starlark.Value, error)) (spec, string, error) {
	sp := spec{precision: -1}
	i := 0
	for i < len(s) && strings.IndexByte("#0- +", s[i]) >= 0 {
		sp.flags += s[i : i+1]
		i++
	}
	num := func() (int, error) {
		if i < len(s) && s[i] == '*' {
			i++
			v, err := nextArg()
			if err != nil {
				return 0, err
			}
			n, err := starlark.AsInt32(v)
			if err != nil {
				return 0, fmt.Errorf("* wants int")
			}
			return n, nil
		}
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			n = n*10 + int(s[i]-'0')
			if n > 1<<16 {
				return 0, fmt.Errorf("width or precision too big")
			}
			i++
		}
		return n, nil
	}
	var err error
	if sp.width, err = num(); err != nil {
		return sp, "", err
	}
	if sp.width < 0 {
		sp.flags += "-"
		sp.width = -sp.width
	}
	if i < len(s) && s[i] == '.' {
		i++
		if sp.precision, err = num(); err != nil {
			return sp, "", err
		}
		sp.precision = max(sp.precision, 0)
	}
	if i < len(s) && strings.IndexByte("hlL", s[i]) >= 0 {
		i++
	}
	if i >= len(s) {
		return sp, "", fmt.Errorf("incomplete format")
	}
	sp.verb = s[i]
	return sp, s[i+1:], nil
}

// format converts one argument.
func (sp spec) format(arg starlark.Value) (string, error) {
	switch sp.verb {
	case 's', 'r', 'a':
		var s string
		if str, ok := arg.(starlark.String); ok && sp.verb == 's' {
			s = string(str)
		} else {
			if reprSize(arg) > maxStringBytes {
				return "", fmt.Errorf("%%%c: value too large to convert to a string (over %d bytes)", sp.verb, maxStringBytes)
			}
			s = arg.String()
		}
		if sp.precision >= 0 && utf8.RuneCountInString(s) > sp.precision {
			s = string([]rune(s)[:sp.precision])
		}
		return sp.pad(s), nil
	case 'c':
		return sp.char(arg)
	case 'd', 'i', 'u', 'o', 'x', 'X':
		return sp.integer(arg)
	case 'e', 'E', 'f', 'F', 'g', 'G':
		return sp.float(arg)
	}
	return "", fmt.Errorf("unsupported format character %q", sp.verb)
}

// pad applies width and the '-' flag to a string conversion.
func (sp spec) pad(s string) string {
	n := utf8.RuneCountInString(s)
	if n >= sp.width {
		return s
	}
	fill := strings.Repeat(" ", sp.width-n)
	if strings.Contains(sp.flags, "-") {
		return s + fill
	}
	return fill + s
}

func (sp spec) char(arg starlark.Value) (string, error) {
	switch arg := arg.(type) {
	case starlark.Int:
		r, err := starlark.AsInt32(arg)
		if err != nil || r < 0 || r > unicode.MaxRune {
			return "", fmt.Errorf("%%c requires a valid Unicode code point, got %s", arg)
		}
		return sp.pad(string(rune(r))), nil
	case starlark.String:
		if utf8.RuneCountInString(string(arg)) != 1 {
			return "", fmt.Errorf("%%c requires int or char")
		}
		return sp.pad(string(arg)), nil
	}
	return "", fmt.Errorf("%%c requires int or char, not %s", arg.Type())
}

func (sp spec) integer(arg starlark.Value) (string, error) {
	if b, ok := arg.(starlark.Bool); ok {
		arg = starlark.MakeInt(0)
		if b {
			arg = starlark.MakeInt(1)
		}
	}
	i, err := starlark.NumberToInt(arg)
	if err != nil {
		return "", fmt.Errorf("%%%c format: a number is required, not %s", sp.verb, arg.Type())
	}
	verb, flags := sp.verb, sp.flags
	switch verb {
	case 'i', 'u':
		verb = 'd'
	case 'o':
		if strings.Contains(flags, "#") {
			verb, flags = 'O', strings.ReplaceAll(flags, "#", "")
		}
	}
	return fmt.Sprintf(sp.goVerb(flags, verb), i.BigInt()), nil
}

func (sp spec) float(arg starlark.Value) (string, error) {
	f, ok := starlark.AsFloat(arg)
	if !ok {
		return "", fmt.Errorf("%%%c format: a real number is required, not %s", sp.verb, arg.Type())
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		s := "nan"
		switch {
		case math.IsInf(f, 1):
			s = "inf"
			if strings.Contains(sp.flags, "+") {
				s = "+inf"
			}
		case math.IsInf(f, -1):
			s = "-inf"
		}
		if sp.verb >= 'A' && sp.verb <= 'Z' {
			s = strings.ToUpper(s)
		}
		return sp.pad(s), nil
	}
	if sp.precision < 0 {
		sp.precision = 6
	}
	return fmt.Sprintf(sp.goVerb(sp.flags, sp.verb), f), nil
}

// goVerb builds the equivalent Go fmt verb.
func (sp spec) goVerb(flags string, verb byte) string {
	var b strings.Builder
	b.WriteByte('%')
	b.WriteString(flags)
	if sp.width > 0 {
		fmt.Fprintf(&b, "%d", sp.width)
	}
	if sp.precision >= 0 {
		fmt.Fprintf(&b, ".%d", sp.precision)
	}
	b.WriteByte(verb)
	return b.String()
}
