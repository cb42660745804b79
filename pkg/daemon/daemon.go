// Package daemon assembles kkd: it opens the store named by the database URL,
// bootstraps the admin user and the demo project on a fresh data dir, starts
// the dispatcher, the watchdog, the HTTP API and the built-in local agent, and
// shuts them down in order.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kraken-go/kk/pkg/agent"
	"github.com/kraken-go/kk/pkg/agentdist"
	"github.com/kraken-go/kk/pkg/auth"
	"github.com/kraken-go/kk/pkg/blob"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/leader"
	"github.com/kraken-go/kk/pkg/logs"
	"github.com/kraken-go/kk/pkg/notify"
	"github.com/kraken-go/kk/pkg/planner"
	"github.com/kraken-go/kk/pkg/results"
	"github.com/kraken-go/kk/pkg/retention"
	"github.com/kraken-go/kk/pkg/scheduler"
	"github.com/kraken-go/kk/pkg/schema"
	"github.com/kraken-go/kk/pkg/server"
	"github.com/kraken-go/kk/pkg/stagerepo"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/store/postgres"
	"github.com/kraken-go/kk/pkg/store/sqlite"
	"github.com/kraken-go/kk/pkg/watchdog"
)

// Options of `kkd serve`.
type Options struct {
	Listen        string
	DataDir       string
	DB            string // sqlite://PATH or postgres://... (default: sqlite://DATADIR/kk.db)
	Storage       string // file://PATH or s3://... (default: file://DATADIR/blobs)
	AdminPassword string
	// SecretKey is the base64 key that encrypts project secrets
	// (KKD_SECRET_KEY); empty: the key file secret.key in DataDir.
	SecretKey       string
	RegistrationKey string
	LocalAgent      bool
	Demo            bool
	Version         string
	Lease           time.Duration
	// JobRetries is how often a job is retried after infrastructure failures
	// (lost agent, executor error); 0: never.
	JobRetries int
	// AgentBinaries is the directory of kkagent-<os>-<arch> binaries served to
	// agents and installers (default: agents/ next to the kkd executable).
	AgentBinaries string
	// PublicURL is kkd's address as users and forges reach it
	// (--public-url), used in notification links and webhook URLs.
	PublicURL string
	// Notify configures run notifications (mail server, Slack token, API
	// base URLs).
	Notify         NotifyOptions
	Stdout, Stderr io.Writer // hints go to Stdout; logs to Stderr
	Logger         *slog.Logger
	ListenerReady  func(addr string) // called once listening (tests)
	// Pprof is the address net/http/pprof is served on (--pprof); empty: off.
	Pprof string
	// PprofAllowRemote lets Pprof be a non-loopback address.
	PprofAllowRemote bool
	// PprofReady is called with the pprof address once it listens (tests).
	PprofReady      func(addr string)
	ShutdownTimeout time.Duration
}

// OpenStore opens the store a database URL names.
func OpenStore(ctx context.Context, dbURL string, logger *slog.Logger) (store.Store, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return nil, badDBURL(err)
	}
	switch u.Scheme {
	case "sqlite":
		path := u.Host + u.Path
		if path == "" {
			return nil, fmt.Errorf("database URL %q has no path: use sqlite:///abs/path/kk.db or sqlite://relative/kk.db", dbURL)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create database dir: %w", err)
		}
		return sqlite.Open(ctx, path, logger)
	case "postgres", "postgresql":
		return postgres.Open(ctx, postgres.Config{URL: dbURL, Logger: logger})
	}
	return nil, fmt.Errorf("database URL %q: unknown scheme %q: use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB", redactURL(dbURL), u.Scheme)
}

// warnReplicaSharing reminds, on PostgreSQL (where several replicas may share
// the database), that replicas must also share the blob store and the secret
// key: a log archived by one replica is read through any replica, and a
// secret encrypted by one is decrypted by the one that hands the job out.
func warnReplicaSharing(log *slog.Logger, o Options) {
	if !strings.HasPrefix(o.DB, "postgres://") && !strings.HasPrefix(o.DB, "postgresql://") {
		return
	}
	if strings.HasPrefix(o.Storage, "file://") {
		log.Warn("blob store is a local directory: when several kkd replicas share this database, give them all the same --storage (a directory they all mount, or s3://...), or logs and artifacts stored through one replica cannot be read through another",
			"storage", o.Storage)
	}
	if o.SecretKey == "" {
		log.Warn("secret key read from the data dir: when several kkd replicas share this database, give them all the same KKD_SECRET_KEY, or secrets created through one replica cannot be resolved by another")
	}
}

// archiveSweepEvery is how often the leader archives the logs of jobs that
// completed on other replicas (or whose archive failed).
const archiveSweepEvery = 30 * time.Second

// leaderWork is the work one replica does at a time: the watchdog, the log
// archiver (two archivers writing one job's archive could overwrite a complete
// archive with one cut short by the other's chunk deletion), the planner
// (stage triggers; its fires are also claimed in the store, so a leader
// change never fires one instant twice), and the tasks given (stage repo
// refresh, retention). It returns when ctx ends (leadership lost or kkd
// stopping).
func leaderWork(ctx context.Context, log *slog.Logger, replica string, wcfg watchdog.Config, archiver *logs.Archiver, tasks ...leaderTask) error {
	log.Info("leader: starting the watchdog, the log archiver and the planner", "replica_id", replica)
	wd := watchdog.New(wcfg)
	if err := wd.Start(ctx); err != nil {
		return fmt.Errorf("start watchdog: %w", err)
	}
	stopTasks := startLeaderTasks(ctx, log, tasks)
	defer stopTasks()
	archiver.Start(ctx) // sweeps what is left to archive
	defer archiver.Stop()
	t := time.NewTicker(archiveSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-wd.Done():
			log.Info("leader: watchdog and log archiver stopped", "replica_id", replica)
			return ctx.Err()
		case <-t.C:
			archiver.Resweep()
		}
	}
}

// Serve runs kkd until ctx is done.
func Serve(ctx context.Context, o Options) error {
	log := o.Logger
	if o.DataDir == "" {
		return errors.New("no data dir: pass --data-dir or set KKD_DATA_DIR")
	}
	if o.JobRetries < 0 {
		return fmt.Errorf("job retries %d: give 0 (no retries) or more", o.JobRetries)
	}
	if o.Pprof != "" {
		if err := checkPprofAddr(o.Pprof, o.PprofAllowRemote); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if o.DB == "" {
		o.DB = "sqlite://" + filepath.Join(o.DataDir, "kk.db")
	}
	if o.Storage == "" {
		o.Storage = "file://" + filepath.Join(o.DataDir, "blobs")
	}
	blobs, err := blob.Open(ctx, o.Storage)
	if err != nil {
		return fmt.Errorf("open blob store (--storage): %w", err)
	}
	warnReplicaSharing(log, o)
	cipher, err := openSecrets(o, log)
	if err != nil {
		return err
	}
	st, err := OpenStore(ctx, o.DB, log)
	if err != nil {
		return err
	}
	defer st.Close()

	fresh, generated, err := bootstrapAdmin(ctx, st, o)
	if err != nil {
		return err
	}
	if fresh && o.Demo {
		if err := createDemo(ctx, st, log); err != nil {
			return fmt.Errorf("create demo project: %w", err)
		}
	}

	hub := notify.New()
	bridge, elector, replica := replication(st, log)
	hub.SetBridge(bridge)
	disp := scheduler.New(scheduler.Config{Store: st, Logger: log, Lease: o.Lease, Hub: hub})
	archiver := logs.NewArchiver(logs.ArchiverConfig{Store: st, Blobs: blobs, Logger: log.With("component", "log-archiver")})
	var eng *engine.Engine
	notif, err := newNotifier(o, st, cipher, log, func(ctx context.Context, runID int64) (map[string]any, error) {
		return eng.RunNotification(ctx, runID)
	})
	if err != nil {
		return err
	}
	// The replica that completes a run analyses its results and then sends
	// its end notifications (claimed in the store: sent once).
	analyzer := results.New(results.Config{Store: st, Logger: log.With("component", "results"), Processed: notif.RunEnded})
	eng = engine.New(engine.Config{Store: st, Hub: hub, Dispatcher: disp, Logger: log, MaxAttempts: o.JobRetries + 1,
		JobDone: archiver.JobCompleted, Results: analyzer, Notifier: notif})
	stageRepos := stagerepo.New(stagerepo.Config{Store: st, Engine: eng, Secrets: cipher, Logger: log.With("component", "stage-repo")})
	eng.SetStageRefresher(stageRepos.BeforeRun)
	ret := retention.New(retention.Config{Store: st, Blobs: blobs, Logger: log.With("component", "retention")})
	health := newHealth(st, log, disp, archiver)
	localKey := auth.NewSecret(24)
	keys := []string{localKey}
	if o.RegistrationKey != "" {
		keys = append(keys, o.RegistrationKey)
	}
	srv := server.New(server.Config{
		Store: st, Engine: eng, Dispatcher: disp, Hub: hub, Logger: log, Version: o.Version, PublicURL: o.PublicURL,
		Logs: &logs.Service{Store: st, Hub: hub, Logger: log, Blobs: blobs}, RegistrationKeys: keys, Blobs: blobs,
		AgentBinaries: agentBinaries(o.AgentBinaries, log), Secrets: cipher, Health: health,
		StageRepos: stageRepos, Retention: ret,
	})

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	health.Start(runCtx)
	disp.Start(runCtx)
	notif.Start(runCtx)
	if err := analyzer.Start(runCtx); err != nil { // also resumes what a crash left unanalysed
		return err
	}
	bridgeDone := make(chan struct{})
	go func() {
		defer close(bridgeDone)
		if err := bridge.Run(runCtx, hub); err != nil {
			log.Error("notify bridge stopped", "err", err)
		}
	}()
	leaderDone := make(chan struct{})
	go func() {
		defer close(leaderDone)
		// Leader-only work: one replica at a time (always this one on SQLite).
		err := elector.Run(runCtx, func(ctx context.Context) error {
			pl := planner.New(planner.Config{Store: st, Engine: eng, Logger: log.With("component", "planner"),
				RepoDir: filepath.Join(o.DataDir, "planner-repos"), Secrets: cipher})
			return leaderWork(ctx, log, replica, watchdog.Config{Store: st, Engine: eng, Dispatcher: disp, Logger: log, Health: health}, archiver,
				leaderTask{"planner", func(ctx context.Context) { _ = pl.Run(ctx) }},
				leaderTask{"stage repo refresh", stageRepos.Run}, leaderTask{"retention", ret.Loop})
		})
		if err != nil {
			log.Error("leader election stopped", "err", err)
		}
	}()

	var pprofDone <-chan struct{}
	if o.Pprof != "" {
		pln, err := pprofListener(o.Pprof, o.PprofAllowRemote)
		if err != nil {
			return err
		}
		pprofDone = servePprof(runCtx, pln, log)
		if o.PprofReady != nil {
			o.PprofReady(pln.Addr().String())
		}
	} else {
		off := make(chan struct{})
		close(off)
		pprofDone = off
	}

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another kkd running? use --listen to pick another address)", o.Listen, err)
	}
	addr := "http://" + ln.Addr().String()
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return runCtx }}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("kkd listening", "addr", addr, "db", redactURL(o.DB), "storage", blobs.String(), "data_dir", o.DataDir, "version", o.Version)
	if o.ListenerReady != nil {
		o.ListenerReady(addr)
	}

	agentDone := make(chan error, 1)
	if o.LocalAgent {
		a, err := agent.New(agent.Config{
			ServerURL: addr, DataDir: filepath.Join(o.DataDir, "agent"), Name: "local",
			RegistrationKey: localKey, Logger: log.With("component", "local-agent"), Version: o.Version,
		})
		if err != nil {
			return fmt.Errorf("built-in agent: %w", err)
		}
		go func() { agentDone <- a.Run(runCtx) }()
	} else {
		close(agentDone)
	}
	printHints(o, addr, generated)

	select {
	case <-ctx.Done():
	case err := <-errc:
		stop()
		return fmt.Errorf("http server: %w", err)
	}
	log.Info("kkd shutting down")
	stop() // ends long-polls and streams (BaseContext) and the built-in agent
	timeout := o.ShutdownTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	<-agentDone
	<-pprofDone
	<-leaderDone
	<-bridgeDone
	<-analyzer.Done()
	notif.Wait()
	<-health.Done()
	<-disp.Done() // the store is closed (deferred) only after every user of it stopped
	return nil
}

// replication returns how this kkd shares wake-ups with and elects a leader
// among the replicas on its database, and its replica id (random per start,
// logged). On SQLite kkd is alone: no bridge, always the leader.
func replication(st store.Store, log *slog.Logger) (notify.Bridge, leader.Elector, string) {
	replica := auth.NewSecret(8)
	pg, ok := st.(*postgres.Store)
	if !ok {
		return notify.NoBridge{}, leader.Always{Logger: log}, replica
	}
	log.Info("kkd replica", "replica_id", replica)
	return pg.NewBridge(postgres.BridgeConfig{ReplicaID: replica, Logger: log}),
		pg.NewElector(postgres.ElectorConfig{ReplicaID: replica, Logger: log}), replica
}

// agentBinaries locates the kkagent binaries kkd serves.
func agentBinaries(dir string, log *slog.Logger) agentdist.Config {
	exe, err := os.Executable()
	if err != nil {
		exe = "kkd"
	}
	cfg := agentdist.DefaultConfig(exe)
	if dir != "" {
		cfg.Dir = dir
	}
	cfg.Logger = log
	return cfg
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = url.UserPassword(u.User.Username(), "xxxxx")
	return u.String()
}

// bootstrapAdmin creates the admin user on a fresh store. It reports whether
// the store was fresh and the password it generated (when it did).
func bootstrapAdmin(ctx context.Context, st store.Store, o Options) (fresh bool, generatedPassword string, err error) {
	n, err := st.CountUsers(ctx)
	if err != nil {
		return false, "", fmt.Errorf("count users: %w", err)
	}
	if n > 0 {
		return false, "", nil
	}
	pw := o.AdminPassword
	generated := pw == ""
	if generated {
		pw = auth.NewSecret(12)
	}
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return false, "", err
	}
	if err := st.CreateUser(ctx, &ci.User{Name: "admin", PasswordHash: hash, Admin: true}); err != nil {
		return false, "", fmt.Errorf("create admin user: %w", err)
	}
	if !generated {
		return true, "", nil
	}
	fmt.Fprintf(o.Stdout, "\nGenerated password of user admin (shown only this once; set KKD_ADMIN_PASSWORD to choose it):\n\n    %s\n\n", pw)
	return true, pw, nil
}

func createDemo(ctx context.Context, st store.Store, log *slog.Logger) error {
	p := ci.Project{Name: demoProject, Description: "A demo project: run `kk flow run demo/main --wait`"}
	if err := st.CreateProject(ctx, &p); err != nil {
		return err
	}
	b := ci.Branch{ProjectID: p.ID, Name: demoBranch, RepoBranch: demoBranch}
	if err := st.CreateBranch(ctx, &b); err != nil {
		return err
	}
	eng := engine.New(engine.Config{Store: st, Logger: log})
	for _, s := range demoStages {
		c := schema.Context{IsCI: true, Project: p.Name, Branch: b.Name, BranchName: b.RepoBranch, Stage: s.name}
		sch, err := eng.EvalStage(ctx, s.name+".py", []byte(s.code), c)
		if err != nil {
			return fmt.Errorf("demo stage %s: %w", s.name, err)
		}
		raw, err := json.Marshal(sch)
		if err != nil {
			return err
		}
		stage := ci.Stage{BranchID: b.ID, Name: s.name, Enabled: true, Code: s.code, Schema: raw, Parent: sch.Parent}
		if err := st.PutStage(ctx, &stage); err != nil {
			return err
		}
	}
	return nil
}

func printHints(o Options, addr, generatedPassword string) {
	pw := "PASSWORD" // the admin password chosen or printed on the first start
	switch {
	case generatedPassword != "":
		pw = generatedPassword
	case o.AdminPassword != "":
		pw = "$KKD_ADMIN_PASSWORD"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "kkd is serving on %s (data dir %s)\n", addr, o.DataDir)
	if o.LocalAgent {
		b.WriteString("A built-in local agent is running and authorized (group all).\n")
	}
	fmt.Fprintf(&b, "\nTry it:\n")
	fmt.Fprintf(&b, "  echo %q | kk login --server %s --user admin --password-stdin\n", pw, addr)
	fmt.Fprintf(&b, "  kk flow run demo/main --wait      # run the demo flow and wait for it\n")
	fmt.Fprintf(&b, "  kk flow list demo/main            # its flows\n")
	fmt.Fprintf(&b, "  kk flow show FLOW_ID              # runs and jobs of a flow\n")
	fmt.Fprintf(&b, "  kk job logs JOB_ID -f             # a job's log, live\n")
	fmt.Fprintf(&b, "  kk agent list                     # agents (kk agent list --discovered for new ones)\n\n")
	fmt.Fprint(o.Stdout, b.String())
}
