package schema

import "go.starlark.net/syntax"

// rewritePercent replaces every `x % y` of a parsed file by
// `__kk_percent__(x, y)` (and `name %= y` by `name = __kk_percent__(name, y)`)
// so that string formatting follows Python. It runs before resolution; the
// call keeps the operator's position for error messages.
func rewritePercent(f *syntax.File) {
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
		if id, ok := st.LHS.(*syntax.Ident); ok && st.Op == syntax.PERCENT_EQ {
			st.Op = syntax.EQ
			st.RHS = percentCall(st.OpPos, &syntax.Ident{NamePos: id.NamePos, Name: id.Name}, st.RHS)
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
		if e.Op == syntax.PERCENT {
			return percentCall(e.OpPos, e.X, e.Y)
		}
	case *syntax.UnaryExpr:
		e.X = rewriteExpr(e.X)
	case *syntax.CallExpr:
		e.Fn = rewriteExpr(e.Fn)
		rewriteList(e.Args)
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

func percentCall(pos syntax.Position, x, y syntax.Expr) *syntax.CallExpr {
	return &syntax.CallExpr{
		Fn:     &syntax.Ident{NamePos: pos, Name: percentFunc},
		Lparen: pos,
		Args:   []syntax.Expr{x, y},
		Rparen: pos,
	}
}
