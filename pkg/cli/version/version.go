// Package version implements `kk version`.
package version

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
)

// Options are the inputs of `kk version`.
type Options struct {
	IO     *iostreams.IOStreams
	Build  factory.BuildInfo
	Format output.Format
}

// Info is the JSON shape of `kk version -o json`.
type Info struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Go      string `json:"go,omitempty"`
}

// NewCmdVersion returns `kk version`.
func NewCmdVersion(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IOStreams, Build: f.Build}
	return &cobra.Command{
		Use:   "version",
		Short: "Print kk's version",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return run(opts)
		},
	}
}

func run(opts *Options) error {
	info := Info{Version: opts.Build.Version, Commit: opts.Build.Commit, Go: opts.Build.GoVersion}
	if opts.Format != output.Table {
		return output.Write(opts.IO.Out, opts.Format, info)
	}
	s := "kk version " + info.Version
	if info.Commit != "" {
		s += " (" + info.Commit + ")"
	}
	if info.Go != "" {
		s += " " + info.Go
	}
	_, err := fmt.Fprintln(opts.IO.Out, s)
	return err
}
