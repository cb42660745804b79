package pgtest

import (
	"context"
	"errors"
	"fmt"
)

// ErrMissing is matched (errors.Is) by the error of StartStandalone when the
// PostgreSQL server binaries are not installed.
var ErrMissing = errors.New("PostgreSQL is not installed")

func (e *missingError) Is(target error) bool { return target == ErrMissing }

// Standalone is a throwaway cluster started outside a test, for programs such
// as the benchmark (cmd/kkbench). It is the cluster URL starts, with an
// empty database kk.
type Standalone struct {
	c *cluster
}

// StartStandalone starts a throwaway cluster (initdb in a temporary
// directory, fsync off, listening on 127.0.0.1 only) with an empty database
// kk. The caller must call Stop. Without the PostgreSQL binaries the error
// matches ErrMissing.
func StartStandalone(ctx context.Context) (*Standalone, error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	c, err := startCluster(ctx, bin)
	if err != nil {
		return nil, err
	}
	admin, err := newAdmin(ctx, c.url("postgres"))
	if err != nil {
		_ = c.stop()
		return nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, `CREATE DATABASE kk`); err != nil {
		_ = c.stop()
		return nil, fmt.Errorf("create database kk: %w", err)
	}
	return &Standalone{c: c}, nil
}

// URL is the URL of the database kk, as the superuser postgres.
func (s *Standalone) URL() string { return s.c.url("kk") }

// Stop shuts the server down and removes its directory.
func (s *Standalone) Stop() error { return s.c.stop() }
