// Package agent is the kkagent runtime: it registers with kkd, waits until an
// admin authorizes it (or presents a registration key), long-polls for work and
// runs the jobs it gets with an executor, streaming logs and step results.
// cmd/kkagent wraps it; kkd embeds it as its built-in local agent.
//
// Life cycle: New validates a Config; Run takes the data dir's lock, deletes
// job spools left by an earlier process, loads or creates the agent's
// identity, registers until authorized, then loops on the work long-poll and
// runs one job at a time until ctx is cancelled. Cancelling ctx cancels a
// running job cleanly (its process groups are killed and its end is reported)
// and makes Run return nil. With a Config.Upgrader, Run returns ErrUpgraded
// when a new binary was installed between jobs.
//
// A job's writes to kkd (start, step results, log chunks, completion) go
// through a spool on disk (<data dir>/spool/<job>-<attempt>/) and are
// delivered in order by one sender, so a job goes on while kkd is
// unreachable and nothing is lost or duplicated when kkd comes back.
//
// The wire protocol is documented in docs/agent-protocol.md and in the package
// comment of pkg/api.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
	"github.com/kraken-go/kk/pkg/executor/local"
	"github.com/kraken-go/kk/pkg/tools"
	"github.com/kraken-go/kk/pkg/version"
)

// Defaults of Config.
const (
	DefaultWorkWait        = 30 * time.Second
	DefaultHeartbeatWait   = 10 * time.Second
	DefaultRegisterWait    = 30 * time.Second
	DefaultRequestTimeout  = 60 * time.Second
	DefaultMinBackoff      = 500 * time.Millisecond
	DefaultMaxBackoff      = 30 * time.Second
	DefaultLogChunkSize    = 64 << 10
	DefaultLogFlushDelay   = 100 * time.Millisecond
	DefaultShutdownTimeout = 15 * time.Second
)

// Config configures an Agent. ServerURL and DataDir are required.
type Config struct {
	// ServerURL is kkd's base URL; "host:port" means http://host:port.
	// Several URLs separated by commas are kkd replicas on one database: the
	// agent uses one at a time and fails over to the next when it does not
	// answer (see docs/agent-protocol.md, "Several servers").
	ServerURL string
	// DataDir holds agent.json (identity), credential, agent.lock and the job
	// workspaces (jobs/).
	DataDir string
	// Name shown by the server (default: the host name).
	Name string
	// RegistrationKey, when it matches the server's, authorizes the agent at
	// once (into Groups).
	RegistrationKey string
	Groups          []string
	// Credential is a pre-issued credential (kkd's built-in agent); without it
	// the agent uses the one stored in DataDir or registers to get one.
	Credential string

	Logger     *slog.Logger // default: discard
	HTTPClient *http.Client // default: a client without timeout (requests carry their own)
	// Executors by name (default: local only, workspaces under DataDir/jobs).
	Executors map[string]executor.Executor
	// Tools by name (default: tools.Builtin()).
	Tools map[string]tools.Tool
	// Version reported in host info (default: version.String()).
	Version string

	// WorkWait is how long the server may hold a work poll (default 30 s).
	WorkWait time.Duration
	// HeartbeatWait is how long the server may hold a heartbeat (default 10 s,
	// at most a third of the lease).
	HeartbeatWait time.Duration
	// RegisterWait is how long the server may hold a register call of an
	// agent waiting for authorization (default 30 s).
	RegisterWait time.Duration
	// RequestTimeout bounds a request beyond its long-poll wait (default 60 s).
	RequestTimeout time.Duration
	// MinBackoff and MaxBackoff bound the retry delays (default 0.5 s, 30 s).
	MinBackoff, MaxBackoff time.Duration
	// LogChunkSize and LogFlushDelay control log chunking (64 KiB, 100 ms).
	LogChunkSize  int
	LogFlushDelay time.Duration
	// ShutdownTimeout is how long a job may keep reporting its end after ctx
	// is cancelled (default 15 s).
	ShutdownTimeout time.Duration
	// SpoolSegmentSize is the size of the files of a job's spool (default
	// DefaultSpoolSegmentSize); delivered files are deleted.
	SpoolSegmentSize int64
	// Upgrader, when set, replaces the agent's binary between jobs
	// (pkg/agentdist). kkd's built-in agent has none.
	Upgrader Upgrader
}

// Upgrader installs a new agent binary; pkg/agentdist implements it.
//
// MaybeUpgrade is called only while the agent is idle: right after start,
// while waiting for authorization and before each work poll; never while a
// job runs. It decides itself how often to ask the server (a call may do
// nothing). It returns true when a new binary is in place: Run then returns
// ErrUpgraded so the process exits and its supervisor starts the new binary.
// An error is logged and the agent goes on.
type Upgrader interface {
	MaybeUpgrade(ctx context.Context) (bool, error)
}

// ErrUpgraded is returned by Run when the Upgrader installed a new binary:
// the process must exit (agentdist.ExitUpgraded) to be restarted on it.
var ErrUpgraded = errors.New("kkagent was upgraded: restart it on the new binary")

// ErrSetup matches (errors.Is) the errors of Run that restarting the agent
// does not fix: the data dir is in use by another kkagent or unusable, the
// identity or credential file is unreadable.
var ErrSetup = errors.New("kkagent setup error")

// setupError marks an error as ErrSetup and keeps its own message.
type setupError struct{ err error }

func (e setupError) Error() string   { return e.err.Error() }
func (e setupError) Unwrap() []error { return []error{e.err, ErrSetup} }

// Agent is a kkagent. Create it with New and start it with Run.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	client *client
	probe  func() ci.HostInfo
}

// New checks cfg, fills in defaults and returns an agent.
func New(cfg Config) (*Agent, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("agent: data dir is required (-d or KKAGENT_DATA_DIR)")
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("agent: data dir: %w", err)
	}
	cfg.DataDir = dir
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Name == "" {
		cfg.Name = hostname()
	}
	if cfg.Version == "" {
		cfg.Version = version.String()
	}
	if cfg.Executors == nil {
		cfg.Executors = map[string]executor.Executor{
			ci.ExecutorLocal: local.New(cfg.DataDir, cfg.Logger.With("executor", ci.ExecutorLocal)),
		}
	}
	if cfg.Tools == nil {
		cfg.Tools = tools.Builtin()
	}
	setDefault(&cfg.WorkWait, DefaultWorkWait)
	setDefault(&cfg.HeartbeatWait, DefaultHeartbeatWait)
	setDefault(&cfg.RegisterWait, DefaultRegisterWait)
	setDefault(&cfg.RequestTimeout, DefaultRequestTimeout)
	setDefault(&cfg.MinBackoff, DefaultMinBackoff)
	setDefault(&cfg.MaxBackoff, DefaultMaxBackoff)
	setDefault(&cfg.LogFlushDelay, DefaultLogFlushDelay)
	setDefault(&cfg.ShutdownTimeout, DefaultShutdownTimeout)
	if cfg.LogChunkSize <= 0 {
		cfg.LogChunkSize = DefaultLogChunkSize
	}
	c, err := newClient(cfg.ServerURL, cfg.HTTPClient, cfg.RequestTimeout, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, client: c}
	a.probe = func() ci.HostInfo {
		h := probeHost(os.DirFS("/"), hostname(), cfg.Version)
		h.Docker, h.LXD = executorVersions(cfg.Executors)
		return h
	}
	return a, nil
}

// CurrentServer returns the base URL of the kkd server the agent uses now
// (one of Config.ServerURL's); an Upgrader downloads binaries from it.
func (a *Agent) CurrentServer() string { return a.client.servers.current() }

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// errCredentialRevoked: the server answered 401 to the credential.
var errCredentialRevoked = errors.New("agent credential was revoked")

// Run runs the agent until ctx is cancelled; it then returns nil. It fails at
// once when another kkagent uses the data dir or the identity is unreadable.
func (a *Agent) Run(ctx context.Context) error {
	lock, err := lockDataDir(a.cfg.DataDir)
	if err != nil {
		return setupError{err}
	}
	defer func() {
		if err := lock.release(); err != nil {
			a.log.Warn("release data dir lock", "err", err)
		}
	}()
	id, created, err := loadIdentity(a.cfg.DataDir)
	if err != nil {
		return setupError{err}
	}
	a.log = a.log.With("agent_uuid", id.UUID)
	cleanSpools(a.cfg.DataDir, a.log)
	// Steps (and job containers) a previous agent process left running (it
	// was SIGKILLed) go now; their jobs have been or will be retried elsewhere.
	for name, ex := range a.cfg.Executors {
		if c, ok := ex.(interface{ SetAgentID(string) }); ok {
			c.SetAgentID(id.UUID)
		}
		if c, ok := ex.(interface{ KillLeftovers() int }); ok {
			if n := c.KillLeftovers(); n > 0 {
				a.log.Warn("killed steps left running by a previous agent process", "executor", name, "process_groups", n)
			}
		}
	}
	if created {
		a.log.Info("new agent identity created", "data_dir", a.cfg.DataDir)
	}
	a.log.Info("kkagent starting", "name", a.cfg.Name, "servers", a.client.servers.names, "version", a.cfg.Version, "executors", a.executorNames())

	if a.upgraded(ctx) {
		return ErrUpgraded
	}
	cred := a.cfg.Credential
	if cred == "" {
		if cred, err = loadCredential(a.cfg.DataDir); err != nil {
			return setupError{err}
		}
	}
	a.client.refresh = func(ctx context.Context) (string, error) { return a.refreshCredential(ctx, id) }
	for {
		if cred == "" {
			if cred, err = a.register(ctx, id); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		a.client.setCredential(cred)
		err := a.workLoop(ctx)
		if ctx.Err() != nil {
			a.log.Info("kkagent stopped")
			return nil
		}
		if errors.Is(err, ErrUpgraded) {
			a.log.Info("kkagent stopping to restart on its new binary")
			return err
		}
		if !errors.Is(err, errCredentialRevoked) {
			return err
		}
		a.log.Warn("the server rejected the agent's credential; registering again")
		if err := dropCredential(a.cfg.DataDir); err != nil {
			a.log.Warn("remove revoked credential", "err", err)
		}
		cred = ""
	}
}

func (a *Agent) executorNames() []string {
	names := make([]string, 0, len(a.cfg.Executors))
	for n := range a.cfg.Executors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (a *Agent) backoff() backoff { return backoff{min: a.cfg.MinBackoff, max: a.cfg.MaxBackoff} }

// upgraded gives the Upgrader its chance; it reports whether a new binary is
// in place. Only call it while no job runs.
func (a *Agent) upgraded(ctx context.Context) bool {
	if a.cfg.Upgrader == nil {
		return false
	}
	ok, err := a.cfg.Upgrader.MaybeUpgrade(ctx)
	if err != nil && ctx.Err() == nil {
		a.log.Warn("self-upgrade failed; trying again later", "err", err)
	}
	return ok && ctx.Err() == nil
}

// heldTooShort tells whether a long poll that brought nothing came back so
// fast that the server is evidently not holding it; the caller then backs off
// instead of hammering the server.
func heldTooShort(elapsed, wait time.Duration) bool {
	return elapsed < min(time.Second, wait/2)
}

// refreshCredential asks for a new credential after the server rejected the
// current one (`kk agent rotate-token`): one register call with the enroll
// secret, without waiting. It fails when the agent is no longer authorized.
func (a *Agent) refreshCredential(ctx context.Context, id identity) (string, error) {
	resp, err := a.client.register(ctx, 0, api.Register{
		UUID: id.UUID, Name: a.cfg.Name, EnrollSecret: id.EnrollSecret, HostInfo: a.probe(),
		RegistrationKey: a.cfg.RegistrationKey, Groups: a.cfg.Groups,
	})
	if err != nil {
		return "", fmt.Errorf("refresh credential: %w", err)
	}
	if !resp.Authorized || resp.Credential == "" {
		return "", fmt.Errorf("refresh credential: the agent is no longer authorized: %s", resp.Message)
	}
	if err := saveCredential(a.cfg.DataDir, resp.Credential); err != nil {
		return "", err
	}
	a.log.Info("credential rotated by the server; new credential stored", "agent_id", resp.AgentID)
	return resp.Credential, nil
}

// register calls register until the server hands out a credential, which it
// stores. Only ctx and an upgrade (ErrUpgraded) end it early.
func (a *Agent) register(ctx context.Context, id identity) (string, error) {
	bo := a.backoff()
	waitingLogged := false
	for {
		if a.upgraded(ctx) {
			return "", ErrUpgraded
		}
		start := time.Now()
		resp, err := a.client.register(ctx, a.cfg.RegisterWait, api.Register{
			UUID:            id.UUID,
			Name:            a.cfg.Name,
			EnrollSecret:    id.EnrollSecret,
			HostInfo:        a.probe(),
			RegistrationKey: a.cfg.RegistrationKey,
			Groups:          a.cfg.Groups,
		})
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		switch {
		case err != nil && retryable(err):
			a.log.Warn("cannot reach the server; retrying", "err", err)
		case err != nil:
			a.log.Error("registration refused; retrying", "err", err)
		case resp.Authorized && resp.Credential != "":
			if err := saveCredential(a.cfg.DataDir, resp.Credential); err != nil {
				return "", err
			}
			a.log.Info("agent authorized", "agent_id", resp.AgentID, "name", resp.Name)
			return resp.Credential, nil
		case resp.Authorized:
			a.log.Error("the server says the agent is authorized but sent no credential and none is stored; "+
				"authorize it again with `kk agent authorize`", "agent_id", resp.AgentID, "message", resp.Message)
		default:
			if !waitingLogged {
				a.log.Info(fmt.Sprintf("waiting for authorization: run `kk agent authorize %s`", a.cfg.Name),
					"agent_id", resp.AgentID, "message", resp.Message)
				waitingLogged = true
			}
			if !heldTooShort(time.Since(start), a.cfg.RegisterWait) {
				bo.reset()
				continue
			}
		}
		if !sleepCtx(ctx, bo.next()) {
			return "", ctx.Err()
		}
	}
}

// workLoop long-polls for work and runs the jobs it gets. It returns
// errCredentialRevoked on 401, ErrUpgraded after an upgrade between jobs and
// ctx's error when ctx ends.
func (a *Agent) workLoop(ctx context.Context) error {
	bo := a.backoff()
	sendHost := true
	a.log.Info("waiting for work")
	for {
		if a.upgraded(ctx) {
			return ErrUpgraded
		}
		req := api.WorkRequest{}
		if sendHost {
			hi := a.probe()
			req.HostInfo = &hi
		}
		start := time.Now()
		asg, err := a.client.work(ctx, a.cfg.WorkWait, req)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case isUnauthorized(err):
			return errCredentialRevoked
		case err != nil:
			a.log.Warn("ask for work failed; retrying", "err", err)
		case asg != nil:
			sendHost = false
			bo.reset()
			a.runJob(ctx, *asg)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a.log.Info("waiting for work")
			continue
		default:
			sendHost = false
			if !heldTooShort(time.Since(start), a.cfg.WorkWait) {
				bo.reset()
				continue
			}
		}
		if !sleepCtx(ctx, bo.next()) {
			return ctx.Err()
		}
	}
}
