// Command kkagent runs jobs for kkd on a build host.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kraken-go/kk/pkg/agentcmd"
	"github.com/kraken-go/kk/pkg/executor/inside"
)

func main() {
	// Inside a job container the agent binary runs as init and step wrapper.
	if code, ok := inside.Main(os.Args[1:]); ok {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := agentcmd.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
