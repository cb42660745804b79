package schema

import (
	"fmt"
	"strings"
)

// step validates one step dict against the common step fields and its
// tool's parameter schema. It returns the step (values as written) or nil.
func (v *validator) step(p path, x any) Step {
	m, ok := v.dict(p, x)
	if !ok {
		return nil
	}
	before := len(v.issues)
	if !v.required(p, m, "tool", "") {
		return nil
	}
	toolRef, ok := v.str(p.key("tool"), m["tool"])
	if !ok {
		return nil
	}
	name, version, _ := strings.Cut(toolRef, "@")
	spec, known := tools[name]
	if !known {
		hint := ""
		if s := suggest(name, ToolNames()); s != "" {
			hint = fmt.Sprintf("did you mean %q? ", s)
		}
		v.add(p.key("tool"), "unknown tool %q (%sknown: %s)", short(name), hint, strings.Join(ToolNames(), ", "))
		return nil
	}
	if strings.Contains(toolRef, "@") && version == "" {
		v.add(p.key("tool"), "empty version in %q (write name or name@version)", toolRef)
	}
	what := " for tool " + name
	for _, prm := range commonParams[1:] {
		if val, ok := m[prm.name]; ok {
			v.param(p.key(prm.name), prm, val)
		}
	}
	if w, ok := m["when"].(string); ok {
		if err := ValidateWhen(w); err != nil {
			v.add(p.key("when"), "%v", err)
		}
	}
	for _, prm := range spec.params {
		val, ok := m[prm.name]
		if !ok {
			if prm.required {
				v.add(p, "missing required key %q%s", prm.name, what)
			}
			continue
		}
		v.param(p.key(prm.name), prm, val)
	}
	if !spec.open {
		v.unknownKeys(p, m, spec.allowedKeys(), what)
	}
	if spec.check != nil {
		spec.check(v, p, m)
	}
	if len(v.issues) > before {
		return nil
	}
	return Step(m)
}

// param checks one parameter value against its type.
func (v *validator) param(p path, prm param, x any) {
	switch prm.typ {
	case tString:
		v.str(p, x)
	case tInt:
		v.intOrInterp(p, x, prm.min)
	case tBool:
		if !isInterp(x) {
			v.boolean(p, x)
		}
	case tEnum:
		v.enum(p, x, prm.enum, true)
	case tStrOrList:
		v.strOrList(p, x)
	case tStrList:
		v.strList(p, x)
	case tStrMap:
		v.strMap(p, x)
	case tIntOrStr:
		if _, ok := x.(string); !ok {
			if _, isNum := x.(int64); !isNum {
				v.add(p, "expected an integer or a string, got %s", describe(x))
				return
			}
			v.integer(p, x, prm.min)
		}
	case tFiles:
		v.files(p, x)
	case tAny:
	}
}

// files checks values_collect's list of {name, namespace}.
func (v *validator) files(p path, x any) {
	l, ok := v.list(p, x)
	if !ok {
		return
	}
	allowed := []string{"name", "namespace"}
	for i, e := range l {
		ep := p.index(i)
		m, ok := v.dict(ep, e)
		if !ok {
			continue
		}
		v.unknownKeys(ep, m, allowed, " in files")
		for _, k := range allowed {
			if val, ok := m[k]; ok {
				v.str(ep.key(k), val)
			}
		}
	}
}
