// Package agent implements `kk agent`: list, show, authorize, enable,
// disable and delete agents and rotate their credentials. Agents are named by
// name or id.
package agent

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
)

// NewCmdAgent returns the `kk agent` command group.
func NewCmdAgent(f *factory.Factory) *cobra.Command {
	cmd := cmdutil.GroupCommand(&cobra.Command{
		Use:   "agent <command>",
		Short: "Manage build agents",
		Long: `Agents run jobs. A new agent shows up as discovered (kk agent list
--discovered) and gets work only after it is authorized.`,
	})
	cmd.AddCommand(NewCmdList(f, nil))
	cmd.AddCommand(NewCmdShow(f, nil))
	cmd.AddCommand(NewCmdAuthorize(f, nil))
	cmd.AddCommand(NewCmdEnable(f, nil))
	cmd.AddCommand(NewCmdDisable(f, nil))
	cmd.AddCommand(NewCmdDelete(f, nil))
	cmd.AddCommand(NewCmdRotateToken(f, nil))
	cmd.AddCommand(NewCmdInstall(f, nil))
	cmd.AddCommand(NewCmdUninstall(f, nil))
	return cmd
}

// normalize makes list fields arrays in JSON.
func normalize(a api.Agent) api.Agent {
	if a.Groups == nil {
		a.Groups = []string{}
	}
	if a.Executors == nil {
		a.Executors = a.HostInfo.Executors()
	}
	return a
}

func system(a api.Agent) string {
	h := a.HostInfo
	switch {
	case h.System != "" && h.Arch != "":
		return h.System + "/" + h.Arch
	case h.System != "":
		return h.System
	case h.OS != "" && h.Arch != "":
		return h.OS + "/" + h.Arch
	}
	return h.OS
}

func printAgents(ios *iostreams.IOStreams, format output.Format, as []api.Agent) error {
	out := make([]api.Agent, len(as))
	for i, a := range as {
		out[i] = normalize(a)
	}
	if format != output.Table {
		return output.Write(ios.Out, format, out)
	}
	t := output.NewTable(ios, "id", "name", "state", "groups", "system", "executors", "address", "last seen")
	for _, a := range out {
		t.AddField(strconv.FormatInt(a.ID, 10))
		t.AddField(a.Name)
		t.AddColorField(string(a.State), output.StateColor(string(a.State)))
		t.AddField(strings.Join(a.Groups, ","))
		t.AddField(system(a))
		t.AddField(strings.Join(a.Executors, ","))
		t.AddField(a.Address)
		t.AddField(output.TimePtr(ios, a.LastSeen))
		t.EndRow()
	}
	return t.Render()
}

func printAgent(ios *iostreams.IOStreams, format output.Format, a api.Agent) error {
	a = normalize(a)
	if format != output.Table {
		return output.Write(ios.Out, format, a)
	}
	h := a.HostInfo
	t := output.NewTable(ios)
	add := func(k, v string) {
		t.AddField(k)
		t.AddField(v)
		t.EndRow()
	}
	add("ID:", strconv.FormatInt(a.ID, 10))
	add("Name:", a.Name)
	add("UUID:", a.UUID)
	t.AddField("State:")
	t.AddColorField(string(a.State), output.StateColor(string(a.State)))
	t.EndRow()
	add("Authorized:", strconv.FormatBool(a.Authorized))
	add("Disabled:", strconv.FormatBool(a.Disabled))
	add("Groups:", strings.Join(a.Groups, ", "))
	add("Address:", a.Address)
	add("Hostname:", h.Hostname)
	add("System:", system(a))
	distro := strings.TrimSpace(h.Distro + " " + h.DistroVersion)
	add("OS:", strings.TrimSpace(h.OS+" "+distro))
	if h.CPUs > 0 || h.MemoryMiB > 0 {
		add("Resources:", fmt.Sprintf("%d CPUs, %d MiB", h.CPUs, h.MemoryMiB))
	}
	add("Isolation:", h.Isolation)
	add("Executors:", strings.Join(a.Executors, ", "))
	add("Docker:", h.Docker)
	add("LXD:", h.LXD)
	add("Agent version:", h.AgentVersion)
	if a.JobID != 0 {
		add("Job:", strconv.FormatInt(a.JobID, 10))
	}
	add("Last seen:", output.TimePtr(ios, a.LastSeen))
	add("Created:", output.Time(ios, a.Created))
	return t.Render()
}
