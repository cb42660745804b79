// Command kkd is the Kraken in Go daemon.
package main

import (
	"context"
	"os"

	"github.com/kraken-go/kk/pkg/daemon"
	"github.com/kraken-go/kk/pkg/version"
)

func main() {
	os.Exit(daemon.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr, version.String()))
}
