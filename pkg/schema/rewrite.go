package schema

import "go.starlark.net/syntax"

// rewriteFile replaces, in a parsed file, every `x % y` by
// `__kk_percent__(x, y)` so that string formatting follows Python, every
// `x * y` by `__kk_mul__(x, y)` and every `x.replace(...)` (and the other
// guardedMethods) by `__kk_method__(x, "replace", ...)` so that their output
// size is checked first (see guards.go). `name %= y` and `name *= y` become
// plain assignments of the same calls. It runs before resolution; the calls
// keep the operator's position for error messages.
func rewriteFile(f *syntax.File) {
	rewriteStmts(f.Stmts)
}

func rewriteStmts(stmts []syntax.Stmt) {
	for _, st := range stmts {
		rewriteStmt(st)
	}
}

func rewriteStmt(st syntax.Stmt) {
	switch st := st.(type) {
	case *syntax.AssignStmt:
		st.LHS = rewriteExpr(st.LHS)
		st.RHS = rewriteExpr(st.RHS)
		id, ok := st.LHS.(*syntax.Ident)
		if !ok {
			return
		}
		switch st.Op {
		case syntax.PERCENT_EQ:
			st.Op = syntax.EQ
			st.RHS = binaryCall(percentFunc, st.OpPos, &syntax.Ident{NamePos: id.NamePos, Name: id.Name}, st.RHS)
		case syntax.STAR_EQ:
			st.Op = syntax.EQ
			st.RHS = binaryCall(mulFunc, st.OpPos, &syntax.Ident{NamePos: id.NamePos, Name: id.Name}, st.RHS)
		}
	case *syntax.DefStmt:
		rewriteList(st.Params)
		rewriteStmts(st.Body)
	case *syntax.ExprStmt:
		st.X = rewriteExpr(st.X)
	case *syntax.IfStmt:
		st.Cond = rewriteExpr(st.Cond)
		rewriteStmts(st.True)
		rewriteStmts(st.False)
	case *syntax.ForStmt:
		st.Vars = rewriteExpr(st.Vars)
		st.X = rewriteExpr(st.X)
		rewriteStmts(st.Body)
	case *syntax.WhileStmt:
		st.Cond = rewriteExpr(st.Cond)
		rewriteStmts(st.Body)
	case *syntax.ReturnStmt:
		st.Result = rewriteExpr(st.Result)
	}
}

func rewriteList(list []syntax.Expr) {
	for i, e := range list {
		list[i] = rewriteExpr(e)
	}
}

// rewriteExpr rewrites e's subexpressions and returns e or its replacement.
func rewriteExpr(e syntax.Expr) syntax.Expr {
	switch e := e.(type) {
	case nil:
		return nil
	case *syntax.BinaryExpr:
		e.X = rewriteExpr(e.X)
		e.Y = rewriteExpr(e.Y)
		switch e.Op {
		case syntax.PERCENT:
			return binaryCall(percentFunc, e.OpPos, e.X, e.Y)
		case syntax.STAR:
			return binaryCall(mulFunc, e.OpPos, e.X, e.Y)
		}
	case *syntax.UnaryExpr:
		e.X = rewriteExpr(e.X)
	case *syntax.CallExpr:
		e.Fn = rewriteExpr(e.Fn)
		rewriteList(e.Args)
		if dot, ok := e.Fn.(*syntax.DotExpr); ok && guardedMethods[dot.Name.Name] {
			name := &syntax.Literal{Token: syntax.STRING, TokenPos: dot.Name.NamePos,
				Raw: `"` + dot.Name.Name + `"`, Value: dot.Name.Name}
			e.Fn = &syntax.Ident{NamePos: dot.Dot, Name: methodFunc}
			e.Args = append([]syntax.Expr{dot.X, name}, e.Args...)
		}
	case *syntax.CondExpr:
		e.Cond = rewriteExpr(e.Cond)
		e.True = rewriteExpr(e.True)
		e.False = rewriteExpr(e.False)
	case *syntax.Comprehension:
		e.Body = rewriteExpr(e.Body)
		for _, c := range e.Clauses {
			switch c := c.(type) {
			case *syntax.ForClause:
				c.Vars = rewriteExpr(c.Vars)
				c.X = rewriteExpr(c.X)
			case *syntax.IfClause:
				c.Cond = rewriteExpr(c.Cond)
			}
		}
	case *syntax.DictExpr:
		for _, entry := range e.List {
			de := entry.(*syntax.DictEntry)
			de.Key = rewriteExpr(de.Key)
			de.Value = rewriteExpr(de.Value)
		}
	case *syntax.ListExpr:
		rewriteList(e.List)
	case *syntax.TupleExpr:
		rewriteList(e.List)
	case *syntax.ParenExpr:
		e.X = rewriteExpr(e.X)
	case *syntax.IndexExpr:
		e.X = rewriteExpr(e.X)
		e.Y = rewriteExpr(e.Y)
	case *syntax.SliceExpr:
		e.X = rewriteExpr(e.X)
		e.Lo = rewriteExpr(e.Lo)
		e.Hi = rewriteExpr(e.Hi)
		e.Step = rewriteExpr(e.Step)
	case *syntax.DotExpr:
		e.X = rewriteExpr(e.X)
	case *syntax.LambdaExpr:
		rewriteList(e.Params)
		e.Body = rewriteExpr(e.Body)
	}
	return e
}

// binaryCall is fn(x, y) at the operator's position.
func binaryCall(fn string, pos syntax.Position, x, y syntax.Expr) *syntax.CallExpr {
	return &syntax.CallExpr{
		Fn:     &syntax.Ident{NamePos: pos, Name: fn},
		Lparen: pos,
		Args:   []syntax.Expr{x, y},
		Rparen: pos,
	}
}
