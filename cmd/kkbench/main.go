// Command kkbench is the benchmark program behind `make bench`: it starts a
// real kkd (SQLite, then PostgreSQL when its binaries are installed), drives
// it with simulated agents that speak the real agent protocol
// (docs/agent-protocol.md) and real kkagent processes, and prints a table and
// one line per figure in the form `BENCH <name> <value> <unit>`.
//
// It is a development tool and is not part of `make build`. See
// docs/benchmarks.md for the method and the latest results.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "kkbench:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(ctx, logger, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kkbench:", err)
		os.Exit(1)
	}
}
