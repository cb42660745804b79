package sqlite

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// TestStmtCache checks that a connection reuses its prepared statements, that
// a query whose statement is busy (its rows still open) runs on a statement
// of its own with correct results, and that a full cache falls back to
// uncached statements.
func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	db, err := openCached(dsn(filepath.Join(t.TempDir(), "c.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := db.ExecContext(ctx, `INSERT INTO t (x) VALUES (?)`, i); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cached := func() map[string]*cachedStmt {
		var m map[string]*cachedStmt
		if err := conn.Raw(func(dc any) error { m = dc.(*cachingConn).stmts; return nil }); err != nil {
			t.Fatal(err)
		}
		return m
	}
	const q = `SELECT x FROM t ORDER BY x`
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var outer, inner []int
	for rows.Next() {
		var x int
		if err := rows.Scan(&x); err != nil {
			t.Fatal(err)
		}
		outer = append(outer, x)
		// The same text while its statement is busy.
		var n int
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE x <= ?`, x).Scan(&n); err != nil {
			t.Fatal(err)
		}
		var sum int
		if err := conn.QueryRowContext(ctx, `SELECT sum(x) FROM (`+q+`)`).Scan(&sum); err != nil {
			t.Fatal(err)
		}
		r2, err := conn.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		c := 0
		for r2.Next() {
			c++
		}
		if err := r2.Close(); err != nil {
			t.Fatal(err)
		}
		inner = append(inner, n*10+c)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 2, 3}; !slices.Equal(outer, want) {
		t.Fatalf("outer rows %v, want %v", outer, want)
	}
	if want := []int{13, 23, 33}; !slices.Equal(inner, want) {
		t.Fatalf("inner results %v, want %v", inner, want)
	}
	m := cached()
	st := m[q]
	if st == nil || st.busy {
		t.Fatalf("%q is not cached and free after use: %+v", q, st)
	}
	// Reuse: the same statement object serves the next query.
	var x int
	if err := conn.QueryRowContext(ctx, q).Scan(&x); err != nil || x != 1 {
		t.Fatalf("reuse: %d, %v", x, err)
	}
	if cached()[q] != st {
		t.Fatal("the statement was prepared again instead of reused")
	}
	// A full cache: new texts run uncached and still work.
	for i := len(cached()); i < maxCachedStmts+5; i++ {
		var got int
		if err := conn.QueryRowContext(ctx, `SELECT ? + `+strconv.Itoa(i), 1).Scan(&got); err != nil || got != i+1 {
			t.Fatalf("query %d: %d, %v", i, got, err)
		}
	}
	if n := len(cached()); n != maxCachedStmts {
		t.Fatalf("%d cached statements, want the bound %d", n, maxCachedStmts)
	}
	// Exec errors leave the statement usable.
	if _, err := conn.ExecContext(ctx, `INSERT INTO nope (x) VALUES (?)`, 1); err == nil {
		t.Fatal("insert into a missing table succeeded")
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO t (x) VALUES (?)`, 4); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("count %d, %v", n, err)
	}
}
