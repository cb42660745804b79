package pgtest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Cluster is a throwaway PostgreSQL server of its own for one test, for
// tests that stop and start the server (outages, restarts) and so cannot
// share the process's cluster. It keeps its data directory and port across
// Stop and Start, so clients reconnect to the same URL and find their data.
// It always runs the local PostgreSQL binaries (KK_TEST_POSTGRES_URL names a
// server a test cannot stop); without them the test fails in CI and is
// skipped elsewhere, as with URL.
type Cluster struct {
	bin string
	mu  sync.Mutex
	c   *cluster
	up  bool
}

// NewCluster starts a dedicated cluster with an empty database kk, and
// stops it and removes its directory when t ends.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := findBinDir()
	if err != nil {
		unavailable(t, "pgtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := startCluster(ctx, bin)
	if err != nil {
		t.Fatalf("pgtest: dedicated cluster: %v", err)
	}
	cl := &Cluster{bin: bin, c: c, up: true}
	t.Cleanup(func() {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		if err := cl.c.stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	admin, err := newAdmin(ctx, c.url("postgres"))
	if err != nil {
		t.Fatalf("pgtest: dedicated cluster: %v", err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, `CREATE DATABASE kk`); err != nil {
		t.Fatalf("pgtest: dedicated cluster: create database kk: %v", err)
	}
	return cl
}

// URL is the URL of the cluster's database kk, as the superuser postgres.
func (cl *Cluster) URL() string { return cl.c.url("kk") }

// Addr is the server's host:port.
func (cl *Cluster) Addr() string { return fmt.Sprintf("127.0.0.1:%d", cl.c.port) }

// Stop shuts the server down (fast shutdown: open sessions are ended, as
// by systemctl stop postgresql) and keeps its data directory.
func (cl *Cluster) Stop(t testing.TB) {
	t.Helper()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if !cl.up {
		t.Fatal("pgtest: Stop: the cluster is not running")
	}
	if err := cl.c.shutdown(); err != nil {
		t.Fatalf("pgtest: stop the cluster: %v", err)
	}
	cl.up = false
}

// Start starts the stopped server again on the same port and data
// directory, and returns once it accepts connections.
func (cl *Cluster) Start(t testing.TB) {
	t.Helper()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.up {
		t.Fatal("pgtest: Start: the cluster is running")
	}
	cred, err := runAs()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := cl.c.run(ctx, cl.bin, filepath.Join(cl.c.dir, "data"), cred); err != nil {
		t.Fatalf("pgtest: start the cluster again: %v", err)
	}
	cl.up = true
}

// newAdmin connects to a cluster's maintenance database.
func newAdmin(ctx context.Context, url string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	return conn, nil
}
