package schema

import (
	"strconv"
	"strings"

	"go.starlark.net/syntax"
)

// The returned stage dict carries no source positions, so problems found in
// it are located by matching their key path against the dict and list
// literals of the source. Each string-keyed dict entry and each element of a
// list that is the value of such an entry becomes a node whose lexical path
// is the chain of enclosing keys (with list indexes where the list is
// literal). Assignments and list method calls name their values too:
// `steps = [...]`, `steps.append({...})` and `d["cmd"] = x` behave like the
// key "steps" or "cmd". A problem's path is compared from its end with every
// node's path; the node sharing the longest suffix (names, then indexes)
// wins, the first in source order on ties.

// seg is one element of a lexical path: a key and, if known, a list index.
type seg struct {
	name string
	idx  int // -1 when unknown
}

// locNode is a located key or list element.
type locNode struct {
	segs     []seg
	anchored bool // the path starts at the dict returned by stage()
	pos      syntax.Position
}

// scope is the lexical path of the code being walked.
type scope struct {
	segs     []seg
	anchored bool
}

func (s scope) with(name string, idx int) scope {
	return scope{segs: append(s.segs[:len(s.segs):len(s.segs)], seg{name, idx}), anchored: s.anchored}
}

// locator finds source positions for issue paths.
type locator struct {
	nodes    []locNode
	fallback syntax.Position // the return of stage(), else def stage, else 1:1
}

// newLocator indexes the literals of a parsed file.
func newLocator(f *syntax.File) *locator {
	l := &locator{}
	for _, st := range f.Stmts {
		l.stmt(st, "")
	}
	return l
}

func (l *locator) add(s scope, pos syntax.Position) {
	l.nodes = append(l.nodes, locNode{segs: s.segs, anchored: s.anchored, pos: pos})
}

func (l *locator) stmts(list []syntax.Stmt, fn string) {
	for _, st := range list {
		l.stmt(st, fn)
	}
}

func (l *locator) stmt(st syntax.Stmt, fn string) {
	switch st := st.(type) {
	case *syntax.DefStmt:
		if fn == "" && st.Name.Name == "stage" && !l.fallback.IsValid() {
			l.fallback = st.Def
		}
		l.stmts(st.Body, st.Name.Name)
	case *syntax.ReturnStmt:
		if st.Result == nil {
			return
		}
		if fn == "stage" {
			l.fallback = st.Return
			l.expr(st.Result, scope{anchored: true})
			return
		}
		l.expr(st.Result, scope{})
	case *syntax.AssignStmt:
		l.assign(st)
	case *syntax.ExprStmt:
		l.expr(st.X, scope{})
	case *syntax.IfStmt:
		l.expr(st.Cond, scope{})
		l.stmts(st.True, fn)
		l.stmts(st.False, fn)
	case *syntax.ForStmt:
		l.expr(st.X, scope{})
		l.stmts(st.Body, fn)
	case *syntax.WhileStmt:
		l.expr(st.Cond, scope{})
		l.stmts(st.Body, fn)
	}
}

// assign names the right-hand side after the variable or the string index
// it is assigned to.
func (l *locator) assign(st *syntax.AssignStmt) {
	knownIdx := st.Op == syntax.EQ
	switch lhs := st.LHS.(type) {
	case *syntax.Ident:
		l.value(st.RHS, scope{}, lhs.Name, knownIdx)
		return
	case *syntax.IndexExpr:
		if k, ok := lhs.Y.(*syntax.Literal); ok && k.Token == syntax.STRING {
			name := k.Value.(string)
			l.add(scope{}.with(name, -1), k.TokenPos)
			l.value(st.RHS, scope{}, name, knownIdx)
			return
		}
	}
	l.expr(st.RHS, scope{})
}

// value walks e as the value stored under name in scope s. The elements of
// a literal list get their index when knownIdx.
func (l *locator) value(e syntax.Expr, s scope, name string, knownIdx bool) {
	if list, ok := e.(*syntax.ListExpr); ok {
		for i, el := range list.List {
			idx := -1
			if knownIdx {
				idx = i
			}
			es := s.with(name, idx)
			l.add(es, syntax.Start(el))
			l.expr(el, es)
		}
		return
	}
	l.expr(e, s.with(name, -1))
}

func (l *locator) expr(e syntax.Expr, s scope) {
	switch e := e.(type) {
	case *syntax.DictExpr:
		for _, entry := range e.List {
			de := entry.(*syntax.DictEntry)
			if k, ok := de.Key.(*syntax.Literal); ok && k.Token == syntax.STRING {
				name := k.Value.(string)
				l.add(s.with(name, -1), k.TokenPos)
				l.value(de.Value, s, name, true)
				continue
			}
			l.expr(de.Key, scope{})
			l.expr(de.Value, scope{})
		}
	case *syntax.ListExpr:
		for _, el := range e.List {
			l.expr(el, s)
		}
	case *syntax.TupleExpr:
		for _, el := range e.List {
			l.expr(el, s)
		}
	case *syntax.ParenExpr:
		l.expr(e.X, s)
	case *syntax.CondExpr:
		l.expr(e.Cond, scope{})
		l.expr(e.True, s)
		l.expr(e.False, s)
	case *syntax.BinaryExpr:
		l.expr(e.X, s)
		l.expr(e.Y, s)
	case *syntax.Comprehension:
		l.expr(e.Body, s)
	case *syntax.CallExpr:
		l.call(e, s)
	case *syntax.LambdaExpr:
		l.expr(e.Body, s)
	}
}

// call handles list methods (steps.append(...)) and keyword arguments of
// dict(...), which name the values they store.
func (l *locator) call(e *syntax.CallExpr, s scope) {
	if dot, ok := e.Fn.(*syntax.DotExpr); ok {
		if recv, ok := dot.X.(*syntax.Ident); ok {
			switch dot.Name.Name {
			case "append", "insert":
				for _, a := range e.Args {
					l.expr(a, scope{}.with(recv.Name, -1))
				}
				return
			case "extend":
				for _, a := range e.Args {
					l.value(a, scope{}, recv.Name, false)
				}
				return
			}
		}
	}
	isDict := false
	if id, ok := e.Fn.(*syntax.Ident); ok && id.Name == "dict" {
		isDict = true
	}
	for _, a := range e.Args {
		if kw, ok := a.(*syntax.BinaryExpr); ok && kw.Op == syntax.EQ {
			if id, ok := kw.X.(*syntax.Ident); ok && isDict {
				l.add(s.with(id.Name, -1), id.NamePos)
				l.value(kw.Y, s, id.Name, true)
				continue
			}
			l.expr(kw.Y, s)
			continue
		}
		l.expr(a, s)
	}
}

// locate returns the position for a path, trying shorter prefixes when no
// node matches, then the fallback.
func (l *locator) locate(p path) syntax.Position {
	q := toSegs(p)
	for n := len(q); n > 0; n-- {
		if pos, ok := l.best(q[:n]); ok {
			return pos
		}
	}
	return l.fallback
}

// best returns the node that matches q best, if any node shares q's last key.
func (l *locator) best(q []seg) (syntax.Position, bool) {
	bestScore, found := 0, false
	var pos syntax.Position
	for _, n := range l.nodes {
		if sc := score(n, q); sc > 0 && (!found || sc > bestScore) {
			bestScore, pos, found = sc, n.pos, true
		}
	}
	return pos, found
}

// score compares paths from the end: +4 per equal key, +2 per equal index,
// stop (with a penalty) at a different index, +1 for an exact anchored match.
func score(n locNode, q []seg) int {
	s, k := 0, 0
	for ; k < len(n.segs) && k < len(q); k++ {
		a, b := n.segs[len(n.segs)-1-k], q[len(q)-1-k]
		if a.name != b.name {
			break
		}
		s += 4
		if a.idx >= 0 && b.idx >= 0 {
			if a.idx != b.idx {
				s -= 3
				break
			}
			s += 2
		}
	}
	if k == 0 {
		return 0
	}
	if k == len(n.segs) && k == len(q) && n.anchored {
		s++
	}
	return s
}

// toSegs turns jobs[0].steps[1].cmd into [{jobs 0} {steps 1} {cmd -1}].
func toSegs(p path) []seg {
	out := make([]seg, 0, len(p))
	for _, e := range p {
		if e.isIndex {
			if len(out) > 0 && out[len(out)-1].idx < 0 {
				out[len(out)-1].idx = e.index
			}
			continue
		}
		out = append(out, seg{name: e.key, idx: -1})
	}
	return out
}

// Locate returns the 1-based source position of the value at key, a path
// such as jobs[0].environments[1].agents_group, in stage code, found the way
// Eval places its validation problems. Callers that check a Stage further
// (the parent exists, the agents group exists) use it to position their own
// Problems. It returns 0, 0 when the code does not parse.
func Locate(code []byte, key string) (line, col int) {
	f, err := fileOptions().Parse("", code, 0)
	if err != nil {
		return 0, 0
	}
	pos := newLocator(f).locate(parsePath(key))
	return int(pos.Line), int(pos.Col)
}

// parsePath parses what path.String writes: keys separated by dots, [n]
// indexes and ["quoted"] keys.
func parsePath(s string) path {
	var p path
	for s != "" {
		switch {
		case s[0] == '.':
			s = s[1:]
		case strings.HasPrefix(s, `["`):
			end := strings.Index(s, `"]`)
			for end > 0 && s[end-1] == '\\' {
				next := strings.Index(s[end+1:], `"]`)
				if next < 0 {
					end = -1
					break
				}
				end += next + 1
			}
			if end < 0 {
				return append(p, pathElem{key: s})
			}
			k, err := strconv.Unquote(s[1 : end+1])
			if err != nil {
				k = s[2:end]
			}
			p = p.key(k)
			s = s[end+2:]
		case s[0] == '[':
			end := strings.IndexByte(s, ']')
			n, err := strconv.Atoi(s[1:max(end, 1)])
			if end < 0 || err != nil {
				return append(p, pathElem{key: s})
			}
			p = p.index(n)
			s = s[end+1:]
		default:
			end := strings.IndexAny(s, ".[")
			if end < 0 {
				end = len(s)
			}
			p = p.key(s[:end])
			s = s[end:]
		}
	}
	return p
}
