// Command kk is the command-line client of Kraken in Go.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/root"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := root.Execute(ctx, factory.New(), os.Args[1:])
	stop()
	os.Exit(int(code))
}
