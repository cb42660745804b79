// Package pgtest gives tests a fresh, empty PostgreSQL database.
//
// With KK_TEST_POSTGRES_URL set (a URL of a role that may CREATE DATABASE),
// every URL call creates a uniquely named database on that server and drops
// it when the test ends.
//
// Otherwise the first URL call of a test process starts one throwaway
// cluster for the whole process: initdb into a temporary directory (in
// /dev/shm when it is available), then the
// postgres server on a free port, listening only on 127.0.0.1, with its unix
// socket in that directory, tuned for tests (fsync off). As root, initdb and
// postgres refuse to run, so they run as the user postgres (Debian's package
// creates it) or, failing that, nobody, with the directory handed to that
// user. The server is a child of the test process that gets SIGQUIT when the
// test process dies, so nothing is left running even when a test binary is
// killed (the next test process removes such a leftover directory);
// Cleanup, called from TestMain after m.Run, stops it and removes the
// directory:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pgtest.Cleanup()
//		os.Exit(code)
//	}
//
// The binaries are found through pg_config --bindir, then initdb on PATH,
// then /usr/lib/postgresql/*/bin (newest version first). When PostgreSQL is
// missing the test fails in CI (CI set) and is skipped elsewhere, naming the
// install command (scripts/test-deps.sh, run by `make test`, installs it).
package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL names the variable with the URL of an existing server to use.
const EnvURL = "KK_TEST_POSTGRES_URL"

// InstallHint is what to do when PostgreSQL is missing.
const InstallHint = "install PostgreSQL (apt-get install postgresql; scripts/test-deps.sh does it for `make test`) or set " +
	EnvURL + " to a server where the URL's role may create databases"

// startTimeout bounds initdb plus the server's start.
const startTimeout = 2 * time.Minute

// server is the process's database server: a cluster this package started,
// or the one KK_TEST_POSTGRES_URL names.
type server struct {
	adminURL string        // URL of the maintenance database, as a superuser
	admin    *pgxpool.Pool // creates and drops the test databases
	cluster  *cluster      // nil with KK_TEST_POSTGRES_URL
	// create is the CREATE DATABASE clause between the name and the
	// template's: copied file by file where the server can (PostgreSQL 15+;
	// much faster for small databases than the default WAL_LOG strategy).
	create string
}

// process holds the one server per test process. Tests share it, as they
// share a Docker engine (see dockertest); its state is only reached through
// the exported functions.
var process struct {
	once      sync.Once
	srv       *server
	err       error
	missing   bool // PostgreSQL is not installed
	mu        sync.Mutex
	stopped   bool
	seq       atomic.Int64
	templates map[string]*template // by key, guarded by mu
}

// template is a prepared database that TemplateURL copies.
type template struct {
	once sync.Once
	name string
	err  error
}

// unavailable fails the test in CI (CI set) and skips it elsewhere.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI: the PostgreSQL tests must run)", msg)
	}
	t.Skipf("%s; skipped outside CI", msg)
}

// URL returns the URL of a new, empty database that is dropped when t ends.
func URL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, get(t), "template0")
}

// TemplateURL returns the URL of a new database that is a copy of the one
// prepare made, and is dropped when t ends. prepare runs once per key and
// test process, on an empty database, and must close its connections to it
// before it returns. Copying a prepared database (for example a migrated
// one) is much faster than preparing each test's database again.
func TemplateURL(t testing.TB, key string, prepare func(ctx context.Context, url string) error) string {
	t.Helper()
	srv := get(t)
	process.mu.Lock()
	if process.templates == nil {
		process.templates = map[string]*template{}
	}
	tpl := process.templates[key]
	if tpl == nil {
		tpl = &template{name: dbName("template "+key, process.seq.Add(1))}
		process.templates[key] = tpl
	}
	process.mu.Unlock()
	tpl.once.Do(func() { tpl.err = srv.prepareTemplate(tpl.name, prepare) })
	if tpl.err != nil {
		t.Fatalf("pgtest: template %q: %v", key, tpl.err)
	}
	return newDatabase(t, srv, tpl.name)
}

func (srv *server) prepareTemplate(name string, prepare func(ctx context.Context, url string) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := srv.admin.Exec(ctx, `CREATE DATABASE `+quoteIdent(name)+srv.create+"template0"); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := withDatabase(srv.adminURL, name)
	if err != nil {
		return err
	}
	if err := prepare(ctx, u); err != nil {
		return err
	}
	// No connections from now on: a database is only copied while nobody
	// is connected to it.
	if _, err := srv.admin.Exec(ctx, `ALTER DATABASE `+quoteIdent(name)+` WITH ALLOW_CONNECTIONS false`); err != nil {
		return fmt.Errorf("seal %s: %w", name, err)
	}
	return nil
}

// newDatabase creates a database copied from template and drops it when t
// ends.
func newDatabase(t testing.TB, srv *server, template string) string {
	t.Helper()
	name := dbName(t.Name(), process.seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := srv.admin.Exec(ctx, `CREATE DATABASE `+quoteIdent(name)+srv.create+quoteIdent(template)); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE ends connections a test left open (PostgreSQL 13+).
		if _, err := srv.admin.Exec(ctx, `DROP DATABASE IF EXISTS `+quoteIdent(name)+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := withDatabase(srv.adminURL, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// AdminURL returns the URL of the server's maintenance database as a
// superuser (or the role of KK_TEST_POSTGRES_URL), for tests that need to
// look at the server itself.
func AdminURL(t testing.TB) string {
	t.Helper()
	return get(t).adminURL
}

// get returns the process's server, starting it on first use.
func get(t testing.TB) *server {
	t.Helper()
	process.mu.Lock()
	stopped := process.stopped
	process.mu.Unlock()
	if stopped {
		t.Fatal("pgtest: Cleanup already ran")
	}
	process.once.Do(func() {
		process.srv, process.err = start()
		var m *missingError
		process.missing = errors.As(process.err, &m)
	})
	if process.missing {
		unavailable(t, "pgtest: %v", process.err)
	}
	if process.err != nil {
		t.Fatalf("pgtest: %v", process.err)
	}
	return process.srv
}

// Cleanup stops the cluster this package started, if any, and removes its
// directory. Call it from TestMain after m.Run.
func Cleanup() {
	process.mu.Lock()
	defer process.mu.Unlock()
	if process.stopped {
		return
	}
	process.stopped = true
	srv := process.srv
	if srv == nil {
		return
	}
	if srv.cluster == nil {
		// Someone else's server: drop the templates made on it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, tpl := range process.templates {
			if _, err := srv.admin.Exec(ctx, `DROP DATABASE IF EXISTS `+quoteIdent(tpl.name)+` WITH (FORCE)`); err != nil {
				fmt.Fprintln(os.Stderr, "pgtest: drop template:", err)
			}
		}
	}
	srv.admin.Close()
	if srv.cluster != nil {
		if err := srv.cluster.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
}

func start() (*server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if u := os.Getenv(EnvURL); u != "" {
		admin, err := pgxpool.New(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvURL, err)
		}
		srv := &server{adminURL: u, admin: admin}
		if err := srv.init(ctx); err != nil {
			admin.Close()
			return nil, fmt.Errorf("%s: %w", EnvURL, err)
		}
		return srv, nil
	}
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	c, err := startCluster(ctx, bin)
	if err != nil {
		return nil, err
	}
	admin, err := pgxpool.New(ctx, c.url("postgres"))
	if err != nil {
		_ = c.stop()
		return nil, fmt.Errorf("connect to the test cluster: %w", err)
	}
	srv := &server{adminURL: c.url("postgres"), admin: admin, cluster: c}
	if err := srv.init(ctx); err != nil {
		admin.Close()
		_ = c.stop()
		return nil, fmt.Errorf("test cluster: %w", err)
	}
	return srv, nil
}

// init checks the connection and picks how to create databases.
func (srv *server) init(ctx context.Context) error {
	var version int
	if err := srv.admin.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	srv.create = " TEMPLATE "
	if version >= 150000 {
		srv.create = " STRATEGY FILE_COPY TEMPLATE "
	}
	return nil
}

// missingError reports that PostgreSQL is not installed.
type missingError struct{ msg string }

func (e *missingError) Error() string { return e.msg }

// findBinDir returns the directory of initdb and postgres.
func findBinDir() (string, error) {
	ok := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); ok(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && ok(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if ok(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	for _, d := range dirs {
		if ok(d) {
			return d, nil
		}
	}
	return "", &missingError{"no PostgreSQL server binaries (initdb, postgres) found via pg_config, PATH or /usr/lib/postgresql/*/bin: " + InstallHint}
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// cluster is a running throwaway PostgreSQL server.
type cluster struct {
	dir  string // temporary directory: data/, the socket and server.log
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when the server process has exited
	werr error         // the server's exit status, once done
}

func (c *cluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// runAs returns the credential to run the server binaries with: none when
// not root, else the user postgres or nobody.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, errors.New("running as root, and neither user postgres nor nobody exists to run the server as: create one (useradd postgres)")
}

func startCluster(ctx context.Context, bin string) (*cluster, error) {
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	base := baseDir()
	removeStale(base)
	dir, err := os.MkdirTemp(base, "kk-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	c := &cluster{dir: dir}
	data := filepath.Join(dir, "data")
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("hand %s to uid %d: %w", dir, cred.Uid, err)
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// A port that was free a moment ago may be taken when the server binds
	// it: try a few.
	for range 5 {
		if c.port, err = freePort(); err != nil {
			break
		}
		if err = c.run(ctx, bin, data, cred); err == nil {
			return c, nil
		}
		if !strings.Contains(err.Error(), "could not bind") && !strings.Contains(err.Error(), "could not create any TCP/IP sockets") {
			break
		}
	}
	_ = os.RemoveAll(dir)
	return nil, err
}

// baseDir is where the cluster's directory goes: /dev/shm when it is a
// writable memory file system (databases are created and dropped a hundred
// times per test run, several times faster in memory), else the temporary
// directory.
func baseDir() string {
	const shm = "/dev/shm"
	var fs syscall.Statfs_t
	const tmpfsMagic = 0x01021994
	if err := syscall.Statfs(shm, &fs); err == nil && fs.Type == tmpfsMagic && syscall.Access(shm, 0o2) == nil {
		return shm
	}
	return os.TempDir()
}

// ownerFile in a cluster's directory holds the test process's PID.
const ownerFile = "owner.pid"

// removeStale removes the cluster directories of test processes that died
// without Cleanup (their servers died with them).
func removeStale(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "kk-pgtest-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// run starts the server and waits until its log says it accepts connections.
func (c *cluster) run(ctx context.Context, bin, data string, cred *syscall.Credential) error {
	logPath := filepath.Join(c.dir, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create server log: %w", err)
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-p", strconv.Itoa(c.port), "-k", c.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=32MB",
		"-c", "logging_collector=off", "-c", "log_min_messages=warning",
		"-c", "log_min_error_statement=panic")
	cmd.Dir = c.dir
	// SIGQUIT (immediate shutdown) when the test process dies without
	// Cleanup: a killed or timed-out test binary leaves nothing running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout = logFile
	cmd.Stderr = io.MultiWriter(logFile, pw)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	c.cmd = cmd
	c.done = make(chan struct{})
	go func() {
		c.werr = cmd.Wait()
		pw.Close()
		logFile.Close()
		close(c.done)
	}()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), "ready to accept connections") {
				close(ready)
				signalled = true
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case <-ready:
		return nil
	case <-c.done:
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("postgres exited on start (%v):\n%s", c.werr, b)
	case <-ctx.Done():
		_ = c.stop()
		return fmt.Errorf("postgres did not get ready within %v (log: %s)", startTimeout, logPath)
	}
}

// stop shuts the server down (fast shutdown, then SIGKILL after a while) and
// removes the cluster's directory.
func (c *cluster) stop() error {
	errs := []error{c.shutdown()}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", c.dir, err))
	}
	return errors.Join(errs...)
}

// shutdown stops the server (fast shutdown, then SIGKILL after a while) and
// keeps its directory, so that run can start it again.
func (c *cluster) shutdown() error {
	var errs []error
	if c.cmd != nil && c.cmd.Process != nil && c.done != nil {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			// Kill the whole process group: the server and its backends.
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.done
			errs = append(errs, errors.New("postgres did not stop within 30s; killed it"))
		}
	}
	return errors.Join(errs...)
}

// dbName makes a database name (at most 63 bytes) from a test name.
func dbName(test string, n int64) string {
	clean := regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(test), "_")
	prefix := fmt.Sprintf("kk_%d_%d_", os.Getpid(), n)
	if room := 63 - len(prefix); len(clean) > room {
		clean = clean[len(clean)-room:]
	}
	return prefix + clean
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// withDatabase returns the connection string u with its database replaced.
func withDatabase(u, db string) (string, error) {
	if strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		p, err := url.Parse(u)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvURL, err)
		}
		p.Path = "/" + db
		p.RawPath = ""
		return p.String(), nil
	}
	// keyword/value form: a later keyword wins.
	return u + " dbname=" + db, nil
}
