package cmdutil

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/factory"
)

// Shell completion of object names. Completion runs `kk __complete ...`
// against the configured server; when it cannot be reached nothing is offered.

func noFile() ([]cobra.Completion, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// FirstArgOnly wraps a completer so it completes only the first argument.
func FirstArgOnly(fn cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return noFile()
		}
		return fn(cmd, args, toComplete)
	}
}

// CompleteProjects completes a project name as the first argument.
func CompleteProjects(f *factory.Factory) cobra.CompletionFunc {
	return FirstArgOnly(func(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		c, err := f.Client()
		if err != nil {
			return noFile()
		}
		ps, err := c.ListProjects(cmd.Context())
		if err != nil {
			return noFile()
		}
		out := make([]cobra.Completion, 0, len(ps))
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
}

// CompleteBranchRefs completes PROJECT/BRANCH as the first argument: project
// names (followed by '/') until a '/' is typed, then that project's branches.
func CompleteBranchRefs(f *factory.Factory) cobra.CompletionFunc {
	return FirstArgOnly(func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		c, err := f.Client()
		if err != nil {
			return noFile()
		}
		project, _, ok := strings.Cut(toComplete, "/")
		if !ok {
			ps, err := c.ListProjects(cmd.Context())
			if err != nil {
				return noFile()
			}
			out := make([]cobra.Completion, 0, len(ps))
			for _, p := range ps {
				out = append(out, p.Name+"/")
			}
			return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
		}
		bs, err := c.ListBranches(cmd.Context(), project)
		if err != nil {
			return noFile()
		}
		out := make([]cobra.Completion, 0, len(bs))
		for _, b := range bs {
			out = append(out, project+"/"+b.Name)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
}

// CompleteAgents completes agent names at argument position pos.
func CompleteAgents(f *factory.Factory, pos int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) != pos {
			return noFile()
		}
		c, err := f.Client()
		if err != nil {
			return noFile()
		}
		var out []cobra.Completion
		for _, discovered := range []bool{false, true} {
			as, err := c.ListAgents(cmd.Context(), discovered)
			if err != nil {
				return noFile()
			}
			for _, a := range as {
				out = append(out, a.Name)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// CompleteGroups completes group names (for any argument or flag).
func CompleteGroups(f *factory.Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		c, err := f.Client()
		if err != nil {
			return noFile()
		}
		gs, err := c.ListGroups(cmd.Context())
		if err != nil {
			return noFile()
		}
		out := make([]cobra.Completion, 0, len(gs))
		for _, g := range gs {
			out = append(out, g.Name)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
