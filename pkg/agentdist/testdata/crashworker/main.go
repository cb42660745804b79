// Command crashworker is a kkagent whose worker crashes at once, for the
// rollback tests: its supervisor and `version` are the real ones (so it passes
// the upgrade's smoke test), but `kkagent worker` exits 1 immediately.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kraken-go/kk/pkg/agentcmd"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		fmt.Fprintln(os.Stderr, "crashworker: simulated worker crash")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := agentcmd.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
