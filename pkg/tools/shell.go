package tools

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
)

// Shell is Kraken's `shell` tool. Parameters:
//
//	cmd         command line, run with `<shell_exe> -c <cmd>` (default shell /bin/sh)
//	script      multi-line script, written to a temporary file in the
//	            workspace with `set -ex` prepended and run with `<shell_exe> <file>`
//	            (default shell /bin/bash when it exists, else /bin/sh); exactly one
//	            of cmd and script is required
//	cwd         working directory, relative to the workspace (default ".")
//	env         dict of environment variables added to the job's (values stringified)
//	user        user to run as (default: the agent's user; Kraken's default
//	            "kraken" user is not assumed to exist)
//	timeout     seconds (a number or numeric string). Unlike Kraken, there is no
//	            60 s default: without timeout the job's deadline bounds the step
//	background  true: start the command, report ok at once, and keep it running
//	            until the job ends (it is killed then); timeout does not apply
//	shell_exe   the shell to use
//	ssh-key     name of an ssh-key secret: an SSH agent holding the key runs in
//	            kkagent for the step (until the job ends for background steps)
//	            and SSH_AUTH_SOCK points the command at it; the key never
//	            touches disk
//
// Status: exit code 0 → ok; other exit codes → failed, reason "retcode";
// timeout → timeout, reason "step-timeout"; the job's deadline → timeout,
// reason "job-timeout"; job cancelled → cancelled.
type Shell struct{}

// shellParams are the parsed parameters of a shell step.
type shellParams struct {
	cmd, script string
	isScript    bool
	cwd         string
	env         map[string]string
	user        string
	timeout     time.Duration
	background  bool
	shellExe    string
	sshKey      string
}

func parseShell(f map[string]any) (shellParams, error) {
	var p shellParams
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	cmd, hasCmd, err := String(f, "cmd")
	add(err)
	script, hasScript, err := String(f, "script")
	add(err)
	switch {
	case hasCmd && hasScript:
		add(errors.New("give either cmd or script, not both"))
	case !hasCmd && !hasScript:
		add(errors.New("cmd or script is required"))
	}
	p.cmd, p.script, p.isScript = cmd, script, hasScript
	p.cwd, _, err = String(f, "cwd")
	add(err)
	p.env, err = StringMap(f, "env")
	add(err)
	p.user, _, err = String(f, "user")
	add(err)
	p.timeout, _, err = Seconds(f, "timeout")
	add(err)
	p.background, err = Bool(f, "background", false)
	add(err)
	p.shellExe, _, err = String(f, "shell_exe")
	add(err)
	p.sshKey, _, err = String(f, "ssh-key")
	add(err)
	return p, errors.Join(errs...)
}

// Run runs one attempt of a shell step.
func (Shell) Run(ctx context.Context, env executor.Env, st Step) Result {
	p, err := parseShell(st.Fields)
	if err != nil {
		return Result{Status: ci.StepError, Reason: ReasonBadParameters, Message: "shell: " + err.Error()}
	}
	stepEnv := p.env
	var agent *sshAgent
	if p.sshKey != "" {
		c, err := st.cred("ssh-key", p.sshKey)
		if err != nil {
			return badParams("shell", err)
		}
		agent, err = startSSHAgent(NewWorkspace(env), st.Index, c.Key, p.user != "")
		if err != nil {
			return Result{Status: ci.StepError, Reason: ReasonExecError, Message: fmt.Sprintf("shell: ssh-key %s: %v", p.sshKey, err)}
		}
		stepEnv = make(map[string]string, len(p.env)+1)
		for k, v := range p.env {
			stepEnv[k] = v
		}
		stepEnv["SSH_AUTH_SOCK"] = agent.sock
	}
	argv, cleanup, err := p.argv(ctx, env, st.Index)
	if err != nil {
		if agent != nil {
			agent.stop()
		}
		return Result{Status: ci.StepError, Reason: ReasonExecError, Message: "shell: " + err.Error()}
	}
	if agent != nil {
		inner := cleanup
		cleanup = func() { inner(); agent.stop() }
	}
	cmd := executor.Command{
		Argv:    argv,
		Env:     envList(st.Env, stepEnv),
		Dir:     p.cwd,
		User:    p.user,
		Timeout: p.timeout,
		Output:  st.Output,
	}
	if p.background {
		return runBackground(ctx, env, st, cmd, cleanup)
	}
	res, err := env.Run(ctx, cmd)
	cleanup()
	return shellResult(ctx, p, res, err)
}

func runBackground(ctx context.Context, env executor.Env, st Step, cmd executor.Command, cleanup func()) Result {
	if st.Background == nil {
		cleanup()
		return Result{Status: ci.StepError, Reason: ReasonExecError, Message: "shell: background steps are not supported here"}
	}
	cmd.Timeout = 0 // bounded by the job
	err := st.Background.Go(ctx, func(ctx context.Context) {
		defer cleanup()
		res, err := env.Run(ctx, cmd)
		switch {
		case err != nil:
			fmt.Fprintf(st.Output, "background command failed: %v\n", err)
		case res.Cancelled:
			fmt.Fprintln(st.Output, "background command stopped at the end of the job")
		default:
			fmt.Fprintf(st.Output, "background command exited with code %d\n", res.ExitCode)
		}
	})
	if err != nil {
		cleanup()
		return Result{Status: ci.StepError, Reason: ReasonExecError, Message: "shell: " + err.Error()}
	}
	return Result{Status: ci.StepOK, Message: "started in the background"}
}

func shellResult(ctx context.Context, p shellParams, res executor.Result, err error) Result {
	switch {
	case err != nil:
		return Result{Status: ci.StepError, Reason: ReasonExecError, Message: "shell: " + err.Error()}
	case res.TimedOut:
		return Result{Status: ci.StepTimeout, Reason: ReasonStepTimeout,
			Message: fmt.Sprintf("step timed out after %s", p.timeout)}
	case res.Cancelled && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return Result{Status: ci.StepTimeout, Reason: ReasonJobTimeout, Message: "job timed out"}
	case res.Cancelled:
		return Result{Status: ci.StepCancelled, Reason: ReasonCancelled, Message: "cancelled"}
	}
	code := res.ExitCode
	if code == 0 {
		return Result{Status: ci.StepOK, ExitCode: &code}
	}
	msg := fmt.Sprintf("command exited with code %d", code)
	if code < 0 {
		msg = "command was killed by a signal"
	}
	return Result{Status: ci.StepFailed, ExitCode: &code, Reason: ReasonRetcode, Message: msg}
}

// argv builds the command line; for a script it writes the script file, which
// cleanup removes.
func (p shellParams) argv(ctx context.Context, env executor.Env, index int) (argv []string, cleanup func(), err error) {
	if !p.isScript {
		sh := p.shellExe
		if sh == "" {
			sh = "/bin/sh"
		}
		return []string{sh, "-c", p.cmd}, func() {}, nil
	}
	sh := p.shellExe
	if sh == "" {
		sh = "/bin/sh"
		if hasFile(ctx, env, "/bin/bash") {
			sh = "/bin/bash"
		}
	}
	// The workspace is visible at the same path to the agent and to the
	// commands (a container bind-mounts it), see executor.SystemFiles.
	f, err := os.CreateTemp(env.Workspace(), ".kk-step-"+strconv.Itoa(index)+"-*.sh")
	if err != nil {
		return nil, nil, fmt.Errorf("write script: %w", err)
	}
	cleanup = func() { _ = os.Remove(f.Name()) }
	_, err = f.WriteString("set -ex\n" + p.script + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && p.user != "" {
		err = os.Chmod(f.Name(), 0o644) // readable by the user the step runs as
	}
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("write script: %w", err)
	}
	return []string{sh, f.Name()}, cleanup, nil
}

// envList merges the job's env and the step's env (the step wins) into sorted
// K=V entries.
func envList(job, step map[string]string) []string {
	m := make(map[string]string, len(job)+len(step))
	for k, v := range job {
		m[k] = v
	}
	for k, v := range step {
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// hasFile tells whether the environment's system has the file p: the host's
// file system unless the environment says otherwise (containers).
func hasFile(ctx context.Context, env executor.Env, p string) bool {
	if sf, ok := env.(executor.SystemFiles); ok {
		return sf.HasFile(ctx, p)
	}
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}
