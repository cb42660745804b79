// Command kkagent runs jobs for kkd on a build host.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kraken-go/kk/pkg/agentcmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := agentcmd.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
