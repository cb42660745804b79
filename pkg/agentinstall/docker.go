package agentinstall

// DockerRunLine returns the `docker run` command line of a containerised
// agent with o, quoted for a POSIX shell. The container gets the host's
// Docker socket (root-equivalent access: docker jobs start sibling
// containers through it) and the data dir mounted at the same path as on
// the host, so the workspaces the agent bind-mounts into job containers
// resolve on the host too. The registration key is in the line: it is
// printed for the user to run it.
func DockerRunLine(o Options) string {
	o = o.withDefaults()
	args := []string{"docker", "run", "-d", "--name", "kkagent", "--restart", "unless-stopped",
		"-v", "/var/run/docker.sock:/var/run/docker.sock",
		"-v", o.DataDir + ":" + o.DataDir,
		"-e", "KRAKEN_SERVER_ADDR=" + o.Server,
		"-e", "KKAGENT_DATA_DIR=" + o.DataDir,
	}
	if o.RegistrationKey != "" {
		args = append(args, "-e", "KKAGENT_REGISTRATION_KEY="+o.RegistrationKey)
	}
	args = append(args, o.Image, "kkagent", "run")
	for _, g := range o.Groups {
		args = append(args, "--group", g)
	}
	if o.Name != "" {
		args = append(args, "--name", o.Name)
	}
	return ShellJoin(args)
}
